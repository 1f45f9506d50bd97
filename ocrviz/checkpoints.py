"""Load and save model weights safely: safetensors, or torch files without pickle code.

Accepted files (recognised by their content, not their name):

* ``.safetensors`` - tensors plus str -> str metadata (ocrviz stores its
  metadata as JSON under the key ``"ocrviz"``);
* torch files (``.pth``, ``.pt``, ``.bin``, ``.ckpt``; zip or legacy format),
  read ONLY with ``torch.load(..., weights_only=True)``; the training state
  that mmengine's Runner and others store beside the weights (``message_hub``
  ``HistoryBuffer`` objects, numpy arrays) is built as inert stand-ins and
  ignored (:mod:`ocrviz.checkpoint_pickle`).  A file whose pickle would call
  anything else (``os.system``...), or whose zip entries would inflate out of
  proportion, is refused with :class:`UnsafeCheckpointError`; ocrviz never
  executes pickle code.

Weights holding NaN or inf are refused (:class:`BrokenWeightsError`, naming
the tensors); damaged metadata is a :class:`CheckpointFormatError`.

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
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint_errors import (ACCEPTED, BrokenWeightsError, CheckpointError, CheckpointFormatError,
                                CheckpointMismatchError, CheckpointNotFoundError, UnsafeCheckpointError)
from .checkpoint_files import _read, check_finite  # noqa: F401  (re-exported: from_checkpoint reads with it)
from .checkpoint_hints import diagnose, suggest

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"
_PREFIXES = ("module.", "model.", "module.model.", "model.module.")
_TRAINING_EXTRAS = ("loss.", "criterion.")  # official FullModel(model, loss) stores the loss weights too
_MAX_LISTED = 20

__all__ = ["load_checkpoint", "save_checkpoint", "checkpoint_metadata", "CheckpointError", "CheckpointNotFoundError",
           "CheckpointFormatError", "UnsafeCheckpointError", "CheckpointMismatchError", "BrokenWeightsError",
           "ACCEPTED"]


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
    return _read(path, "cpu", finite=False)[1]


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
