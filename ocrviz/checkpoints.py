"""Load and save model weights safely: safetensors, or torch files without pickle code.

Accepted files (recognised by their content, not their name):

* ``.safetensors`` - tensors plus str -> str metadata (ocrviz stores its
  metadata as JSON under the key ``"ocrviz"``);
* torch files (``.pth``, ``.pt``, ``.bin``, ``.ckpt``; zip or legacy format),
  read ONLY with ``torch.load(..., weights_only=True)``.  A file that needs
  pickle code execution (custom classes, ``os.system``...) is refused with
  :class:`UnsafeCheckpointError`; ocrviz never executes pickle code.

Layouts found in the wild: a raw state dict, ``{"state_dict": ...}`` (MMSeg,
Lightning), ``{"model": ...}``; keys behind ``model.`` (official HRNet-OCR
releases, whose training wrapper also stores ``loss.*`` buffers, dropped here)
or ``module.`` (DataParallel; ``module.model.*`` with ``module.loss.*``) are
stripped when that makes them match.  Keys under other names (MMSeg,
openseg.pytorch) are mapped by :func:`ocrviz.from_checkpoint`, which also
builds the model; a mismatch report here says when a file looks like one.

A mismatch is reported in well under a second, even for thousands of keys:
"did you mean" suggestions compare each listed key only with model keys of
the same last name and shape (a few at most), never all keys with all keys.

Loading validates everything first (keys, shapes, class count) and only then
copies, so a failed load leaves the model untouched.

Example::

    save_checkpoint(model, "demo.safetensors", {"dataset": "shapes"})
    meta = load_checkpoint(model, "demo.safetensors")   # {"dataset": "shapes", "arch": ..., ...}
"""
from __future__ import annotations

import json
import os
import pickle
import struct
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint_hints import diagnose, suggest

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"
ACCEPTED = "safetensors (.safetensors) or a torch state dict saved with torch.save (.pth, .pt, .bin, .ckpt)"
_PREFIXES = ("module.", "model.", "module.model.", "model.module.")
_TRAINING_EXTRAS = ("loss.", "criterion.")  # official FullModel(model, loss) stores the loss weights too
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")
_MAX_LISTED = 20


class CheckpointError(ValueError):
    """Base class of every checkpoint problem ocrviz reports."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The path does not exist or is not a file."""


class CheckpointFormatError(CheckpointError):
    """The file is not a checkpoint ocrviz can read (an image, text, a corrupt file...)."""


class UnsafeCheckpointError(CheckpointError):
    """The torch file holds Python objects whose unpickling would run code."""


class CheckpointMismatchError(CheckpointError):
    """Checkpoint keys or shapes do not fit the model; nothing was loaded."""

    def __init__(self, message: str, missing: list[str], unexpected: list[str],
                 shape_conflicts: list[tuple[str, tuple[int, ...], tuple[int, ...]]]) -> None:
        super().__init__(message)
        self.missing = missing
        self.unexpected = unexpected
        self.shape_conflicts = shape_conflicts  # (key, checkpoint shape, model shape)


# ---------------------------------------------------------------- reading files
def _sniff(path: Path) -> str:
    """'safetensors' | 'torch' from the first bytes, else raise CheckpointFormatError."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if head[8:9] == b"{" and 0 < header_len <= size - 8:
            return "safetensors"
    if head[:4] == b"PK\x03\x04":               # torch >= 1.6 zip format
        return "torch"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):  # pickle / legacy torch
        return "torch"
    what = "an empty file" if size == 0 else f"a file starting with {head[:8]!r}"
    raise CheckpointFormatError(f"{path} is not a checkpoint ({what}); accepted formats: {ACCEPTED}")


def _read_safetensors(path: Path, map_location: Any) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import SafetensorError, safe_open

    device = str(map_location) if isinstance(map_location, (str, torch.device)) else "cpu"
    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            raw_meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except SafetensorError as e:
        raise CheckpointFormatError(f"{path} is not a valid safetensors file ({e}); accepted formats: {ACCEPTED}") from e
    meta: dict = json.loads(raw_meta["ocrviz"]) if "ocrviz" in raw_meta else dict(raw_meta)
    return tensors, meta


def _unsafe_message(path: Path, err: Exception) -> str:
    detail = [ln.strip() for ln in str(err).splitlines() if "GLOBAL" in ln or "Unsupported" in ln]
    return (f"{path} contains Python objects beyond tensors"
            f"{' (' + detail[0] + ')' if detail else ''}; ocrviz never executes pickle code, so it will not "
            f"load this file.  To convert it, load it yourself in a trusted environment "
            f"(full unpickling only if you trust its origin), put the weights into "
            f"the model and save them with ocrviz.save_checkpoint(model, 'weights.safetensors') "
            f"(or safetensors.torch.save_file(state_dict, 'weights.safetensors')).")


def _read_torch(path: Path, map_location: Any) -> tuple[dict[str, Any], dict]:
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pickle protocol.*")
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(_unsafe_message(path, e)) from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError) as e:
        raise CheckpointFormatError(f"{path} could not be read as a torch checkpoint ({type(e).__name__}: "
                                    f"{str(e).strip()[:200]}); accepted formats: {ACCEPTED}") from e
    meta: dict = {}
    if isinstance(payload, dict):
        for key in _WRAPPER_KEYS:
            if isinstance(payload.get(key), dict):
                for meta_key in ("metadata", "meta"):
                    if isinstance(payload.get(meta_key), dict):
                        meta = dict(payload[meta_key])
                        break
                payload = payload[key]
                break
    if not isinstance(payload, dict) or not payload:
        what = "an empty state dict" if isinstance(payload, dict) else f"a {type(payload).__name__}"
        raise CheckpointFormatError(f"{path} holds {what}, not model weights; expected a dict of "
                                    f"tensors, or one under 'state_dict' or 'model'")
    bad = [k for k, v in payload.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointFormatError(f"{path}: {len(bad)} entries are not tensors (e.g. {bad[0]!r}: "
                                    f"{type(payload[bad[0]]).__name__}); expected a state dict of tensors, or one "
                                    f"under 'state_dict' or 'model' (top-level keys: {list(payload)[:8]})")
    return dict(payload), meta


def _read(path: str | os.PathLike, map_location: Any) -> tuple[dict[str, torch.Tensor], dict]:
    p = Path(path)
    if not p.exists():
        raise CheckpointNotFoundError(f"checkpoint {p} does not exist; expected {ACCEPTED}")
    if not p.is_file():
        raise CheckpointNotFoundError(f"checkpoint {p} is not a file; expected {ACCEPTED}")
    if _sniff(p) == "safetensors":
        return _read_safetensors(p, map_location)
    return _read_torch(p, map_location)


# ---------------------------------------------------------------- matching keys
def _strip_prefix(sd: dict[str, torch.Tensor], model_keys: set[str]) -> dict[str, torch.Tensor]:
    """Drop the wrapper prefix ('model.', 'module.', both) that makes most keys match."""
    def strip(prefix: str) -> dict[str, torch.Tensor]:
        return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in sd.items()}

    best, best_score = "", sum(k in model_keys for k in sd)
    for prefix in _PREFIXES:
        if any(k.startswith(prefix) for k in sd):
            score = sum(k in model_keys for k in strip(prefix))
            if score > best_score:
                best, best_score = prefix, score
    if not best:
        return sd
    return {k[len(best):] if k.startswith(best) else k: v for k, v in sd.items()
            if k.startswith(best) or k in model_keys or not _is_training_extra(k)}


def _is_training_extra(key: str) -> bool:
    """``loss.*`` / ``criterion.*``, also behind wrappers (``module.loss.criterion.weight``)."""
    while key.startswith(("module.", "model.")):
        key = key.split(".", 1)[1]
    return key.startswith(_TRAINING_EXTRAS)


def _fmt(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) or "scalar"


def _listing(title: str, lines: list[str]) -> list[str]:
    if not lines:
        return []
    more = [f"    ... and {len(lines) - _MAX_LISTED} more"] if len(lines) > _MAX_LISTED else []
    return [f"  {title} ({len(lines)}):"] + [f"    {ln}" for ln in lines[:_MAX_LISTED]] + more


def _class_count_hint(model: nn.Module, conflicts: list[tuple[str, tuple, tuple]]) -> str | None:
    """'checkpoint has 19 classes (...)' when every conflict differs only in the class axis."""
    k_model = getattr(model, "num_classes", None)
    if not isinstance(k_model, int) or not conflicts:
        return None
    k_ckpt = {c[0] for _, c, _ in conflicts}
    if len(k_ckpt) != 1 or any(m[0] != k_model or c[1:] != m[1:] for _, c, m in conflicts):
        return None
    key, shape, _ = next((c for c in conflicts if c[0].endswith("cls_head.weight")),
                         next((c for c in conflicts if c[0].endswith(".weight")), conflicts[0]))
    n = k_ckpt.pop()
    return (f"checkpoint has {n} classes ({key} {_fmt(shape)}), the model {k_model}; "
            f"create the model with num_classes={n}")


def _check(model: nn.Module, sd: dict[str, torch.Tensor], strict: bool, path: str) -> dict[str, torch.Tensor]:
    """Validate ``sd`` against the model; return what to load, or raise before touching the model."""
    target = model.state_dict()
    missing = [k for k in target if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in target]
    conflicts = [(k, tuple(v.shape), tuple(target[k].shape)) for k, v in sd.items()
                 if k in target and tuple(v.shape) != tuple(target[k].shape)]
    matched = len(sd) - len(unexpected)
    if not conflicts and matched and (not strict or not (missing or unexpected)):
        if missing or unexpected:
            warnings.warn(f"load_checkpoint(strict=False) {path}: {len(missing)} model entries kept their values "
                          f"(missing from the checkpoint), {len(unexpected)} checkpoint entries ignored",
                          stacklevel=3)
        return {k: v for k, v in sd.items() if k in target}

    name = type(model).__name__
    lines = [f"checkpoint {path} does not fit {name} ({len(sd)} checkpoint entries, {len(target)} model entries); "
             f"nothing was loaded, the model is unchanged:"]
    hint = _class_count_hint(model, conflicts)
    if hint:
        lines.append(f"  {hint}")
    if not matched:
        lines.append(f"  none of the checkpoint keys is a model key (checkpoint starts with {list(sd)[:3]}, "
                     f"the model with {list(target)[:3]}); is it a checkpoint for another architecture?")
    lines += diagnose(sd, target, unexpected, missing, len(conflicts))
    suggestions = suggest(sd, target, unexpected[:_MAX_LISTED], missing) + unexpected[_MAX_LISTED:]
    lines += _listing("missing from the checkpoint", missing)
    lines += _listing("unexpected in the checkpoint", suggestions)
    lines += _listing("shape conflicts",
                      [f"{k}: checkpoint {_fmt(c)} vs model {_fmt(m)}" for k, c, m in conflicts])
    if not conflicts and matched:
        lines.append("  pass strict=False to load the matching entries and skip the rest")
    raise CheckpointMismatchError("\n".join(lines), missing, unexpected, conflicts)


# ---------------------------------------------------------------- public API
def load_checkpoint(model: nn.Module, path: str | os.PathLike, *, strict: bool = True,
                    map_location: Any = "cpu") -> dict:
    """Load weights from ``path`` into ``model``; return the checkpoint's metadata dict.

    ``strict=True``: every model entry must be present (BatchNorm
    ``num_batches_tracked`` may be absent) and no extra entry may remain.
    ``strict=False``: load the entries that match, warn about the rest.
    Shape conflicts always fail.  On any error the model is unchanged.

    Raises :class:`CheckpointNotFoundError`, :class:`CheckpointFormatError`,
    :class:`UnsafeCheckpointError` or :class:`CheckpointMismatchError` (all
    :class:`CheckpointError`, a ``ValueError``).

    Example::

        model = HRNetW48OCR(num_classes=19)
        load_checkpoint(model, "hrnet_ocr_cs_8162_torch11.pth")   # 'model.' prefix stripped
    """
    sd, meta = _read(path, map_location)
    sd = _strip_prefix(sd, set(model.state_dict()))
    to_load = _check(model, sd, strict, str(path))
    model.load_state_dict(to_load, strict=False)  # everything was validated above
    return meta


def checkpoint_metadata(path: str | os.PathLike) -> dict:
    """The metadata stored with a checkpoint (for ocrviz checkpoints: the model card), without a model.

    Same safety rules as :func:`load_checkpoint` (safetensors, or ``weights_only`` torch files).
    """
    return _read(path, "cpu")[1]


def _model_metadata(model: nn.Module) -> dict:
    from . import __version__

    meta: dict[str, Any] = {"ocrviz_version": __version__}
    for attr in ("arch", "num_classes", "class_names", "palette", "model_kwargs", "input_mean", "input_std"):
        value = getattr(model, attr, None)
        if value is not None and not isinstance(value, (nn.Module, torch.Tensor)):
            meta[attr] = value
    return meta


def save_checkpoint(model: nn.Module, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Save ``model.state_dict()`` to ``path`` (.safetensors, or .pth/.pt/.bin/.ckpt); return the path.

    ``metadata`` (JSON-serialisable) is stored with the weights, together with
    the model's ``arch``, ``num_classes``, ``class_names``, ``palette``,
    ``model_kwargs`` and, when set, ``input_mean`` / ``input_std`` (your keys win;
    :func:`ocrviz.from_checkpoint` rebuilds the model from them); :func:`load_checkpoint`
    returns it.  Torch files hold
    ``{"state_dict": ..., "metadata": ...}`` and load with ``weights_only=True``.
    The file is written atomically (temporary file, then rename).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix != SAFETENSORS_SUFFIX and suffix not in TORCH_SUFFIXES:
        raise ValueError(f"cannot save to {p}: unknown extension {suffix or '(none)'!r}; use {ACCEPTED}")
    meta = {**_model_metadata(model), **(metadata or {})}
    try:
        meta_json = json.dumps(meta)
    except TypeError as e:
        raise TypeError(f"metadata must be JSON-serialisable (str, numbers, lists, dicts): {e}") from e
    meta = json.loads(meta_json)  # same types whichever the format (tuples become lists)

    sd: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for k, v in model.state_dict().items():
        t = v.detach().cpu().contiguous()
        ptr = t.untyped_storage().data_ptr()
        sd[k] = t.clone() if ptr in seen and t.numel() else t  # safetensors refuses shared memory
        seen.add(ptr)

    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    try:
        if suffix == SAFETENSORS_SUFFIX:
            from safetensors.torch import save_file
            save_file(sd, str(tmp), metadata={"format": "pt", "ocrviz": meta_json})
        else:
            torch.save({"state_dict": sd, "metadata": meta}, tmp)
        from ocrviz.atomic import file_mode

        os.chmod(tmp, file_mode())                 # as open() makes files (safetensors writes 0600)
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()
    return p
