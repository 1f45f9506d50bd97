"""A model's own input normalisation: read from an MMSeg config, kept on the model, used by default.

MMSeg checkpoints carry their training config in ``meta``: MMSeg 1.x (the
mmengine runner) writes ``meta["cfg"]``, the config's ``pretty_text``, with

    data_preprocessor = dict(bgr_to_rgb=True, mean=[123.675, 116.28, 103.53],
                             std=[58.395, 57.12, 57.375], type='SegDataPreProcessor', ...)

(also inside ``model = dict(...)``), MMSeg 0.x writes ``meta["config"]`` with

    img_norm_cfg = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)

Both are mean / std in 0..255 units, in the channel order the network sees:
MMSeg decodes images as BGR, so ``bgr_to_rgb=True`` / ``to_rgb=True`` means
RGB, and ``False`` (``SegDataPreProcessor``'s default) means the network sees
BGR.  :func:`from_config` reads them WITHOUT running the config: the text is
only parsed (``ast.parse``) and only the number lists are read
(``ast.literal_eval`` of list / tuple literals); anything else (a name, a
call, ``__import__(...)``) is ignored, so the result is None.

:func:`ocrviz.from_checkpoint` stores the result on the model as
``model.input_mean`` / ``model.input_std`` (0..255 units, RGB order; for a BGR
config it reverses conv1's input channels, so that the model takes RGB like
every ocrviz model).  :func:`normalisation_of` reads them back (or an MMSeg
model's own ``data_preprocessor``), and :func:`input_normalisation` is what the
explorer and ``ocrviz explain`` normalise with when the caller gives none.
"""
from __future__ import annotations

import ast
import json
import math
import re
import warnings
from typing import Any, NamedTuple, Sequence

__all__ = ["Normalisation", "from_config", "from_meta", "from_openseg", "normalisation_of", "input_normalisation", "normalise",
           "IMAGENET_MEAN", "IMAGENET_STD"]

Triple = tuple[float, float, float]
IMAGENET_MEAN: Triple = (123.675, 116.28, 103.53)     # 0..255 units: ocrviz.data.dataset.MEAN * 255
IMAGENET_STD: Triple = (58.395, 57.12, 57.375)
MAX_STATEMENT_CHARS = 200_000       # one top-level assignment; MMSeg's `model = dict(...)` is ~2-10 kB
_WANTED = ("model", "data_preprocessor", "img_norm_cfg", "test_pipeline", "train_pipeline", "data")
_TOP_ASSIGNMENT = re.compile(r"^([A-Za-z_]\w*)[ \t]*=(?!=)", re.MULTILINE)


class Normalisation(NamedTuple):
    """Per-channel mean / std (0..255 units) in the order the network sees: ``rgb`` False means BGR."""
    mean: Triple
    std: Triple
    rgb: bool = True

    def as_rgb(self) -> "Normalisation":
        """The same statistics in RGB order (reversed when the config's order is BGR)."""
        return self if self.rgb else Normalisation(self.mean[::-1], self.std[::-1], True)


# ---------------------------------------------------------------- parsing, never executing
def _triple(value: Any) -> Triple | None:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        return None
    return tuple(float(v) for v in value)  # type: ignore[return-value]


def _literal(node: ast.AST | None) -> Any:
    """A number list or a bool constant from a literal node; anything else -> None (never evaluated)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        try:
            return ast.literal_eval(node)           # literals only: raises on names, calls, ...
        except (ValueError, TypeError, SyntaxError, RecursionError):
            return None
    return None


def _fields(node: ast.AST | None) -> dict[str, ast.AST] | None:
    """The entries of ``dict(a=..., ...)`` or ``{'a': ...}``, as AST nodes (keys that are plain strings)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        return {kw.arg: kw.value for kw in node.keywords if kw.arg is not None}
    if isinstance(node, ast.Dict):
        return {k.value: v for k, v in zip(node.keys, node.values)
                if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return None


def _from_fields(fields: dict[str, Any], preprocessor: bool) -> Normalisation | None:
    """mean / std / channel order from a data_preprocessor (``preprocessor``) or a Normalize / img_norm_cfg."""
    mean, std = _triple(fields.get("mean")), _triple(fields.get("std"))
    if mean is None or std is None or min(std) <= 0:
        return None
    if preprocessor:             # SegDataPreProcessor: either flag swaps BGR (as decoded) to RGB; default neither
        flags = [fields.get(k, False) for k in ("bgr_to_rgb", "rgb_to_bgr")]
    else:                        # mmcv Normalize / img_norm_cfg: to_rgb, default True
        flags = [fields.get("to_rgb", True)]
    if not all(isinstance(f, bool) for f in flags):
        return None
    return Normalisation(mean, std, rgb=any(flags))


_READ = ("mean", "std", "to_rgb", "bgr_to_rgb", "rgb_to_bgr")


def _literal_fields(node: ast.AST | None) -> dict[str, Any] | None:
    """The normalisation entries of a dict node, read as literals (unreadable ones become None)."""
    fields = _fields(node)
    if fields is None:
        return None
    out = {k: _literal(v) for k, v in fields.items() if k in _READ}
    kind = fields.get("type")
    if isinstance(kind, ast.Constant) and isinstance(kind.value, str):
        out["type"] = kind.value
    return out


def top_level_statements(text: str, names: Sequence[str] | None = _WANTED) -> dict[str, ast.AST]:
    """The value nodes of the top-level assignments ``name = ...`` for ``names`` (None: all), the last of each.

    Linear in the text: the statements are cut at the lines that start with
    ``identifier =`` (how configs and mmengine's ``pretty_text`` write them),
    and only the wanted ones, each at most ``MAX_STATEMENT_CHARS``, are
    parsed.  A 2 MB config costs a regex scan, not a 1 GB syntax tree; an
    unrelated statement that is not Python (a ``<object at 0x...>`` repr in
    ``pretty_text``) does not hide the rest.  Parsing runs nothing.
    """
    starts = [(m.start(), m.group(1)) for m in _TOP_ASSIGNMENT.finditer(text)]
    found: dict[str, ast.AST] = {}
    for (begin, name), (end, _) in zip(starts, starts[1:] + [(len(text), "")]):
        if (names is not None and name not in names) or end - begin > MAX_STATEMENT_CHARS:
            continue
        try:
            tree = ast.parse(text[begin:end], mode="exec")          # parsing runs nothing
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        stmt = tree.body[0] if tree.body else None         # what follows on lines not `name =`: ignored
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            found[name] = stmt.value                 # the last assignment wins, as when a config is run
    return found


def _from_text(text: str) -> Normalisation | None:
    top = top_level_statements(text)
    model = _fields(top.get("model")) or {}
    for node, preprocessor in ((model.get("data_preprocessor"), True), (top.get("data_preprocessor"), True),
                               (top.get("img_norm_cfg"), False)):
        fields = _literal_fields(node)
        if fields is not None:
            found = _from_fields(fields, preprocessor)
            if found is not None:
                return found
    pipelines = [top["test_pipeline"]] if "test_pipeline" in top else list(top.values())
    for node in (n for p in pipelines for n in ast.walk(p)):   # 0.x: dict(type='Normalize', ...) in the pipelines
        fields = _literal_fields(node)
        if fields is not None and fields.get("type") == "Normalize":
            found = _from_fields(fields, False)
            if found is not None:
                return found
    return None


def _from_dict(cfg: dict) -> Normalisation | None:
    model = cfg.get("model") if isinstance(cfg.get("model"), dict) else {}
    for node, preprocessor in ((model.get("data_preprocessor"), True), (cfg.get("data_preprocessor"), True),
                               (cfg.get("img_norm_cfg"), False)):
        if isinstance(node, dict):
            found = _from_fields(node, preprocessor)
            if found is not None:
                return found
    return None


def from_config(config: str | dict | None) -> Normalisation | None:
    """The input normalisation an MMSeg config (its text, or the config as a dict) trains with, or None.

    Looked up in this order: ``model.data_preprocessor``, ``data_preprocessor``
    (MMSeg 1.x), ``img_norm_cfg``, a ``Normalize`` step of ``test_pipeline``
    (MMSeg 0.x).  A text is parsed, never run; values that are not literal
    number lists / booleans count as absent.

        >>> from_config("img_norm_cfg = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)")
        Normalisation(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375), rgb=True)
        >>> from_config("img_norm_cfg = dict(mean=__import__('os').getcwd(), std=[1, 1, 1])") is None
        True
    """
    if isinstance(config, str):
        return _from_text(config)
    if isinstance(config, dict):
        return _from_dict(config)
    return None


def from_meta(meta: dict) -> Normalisation | None:
    """The normalisation in an MMSeg checkpoint's ``meta``: ``cfg`` (1.x), ``config`` (0.x), else None."""
    for key in ("cfg", "config"):
        found = from_config(meta.get(key))
        if found is not None:
            return found
    return None


def from_openseg(config: Any) -> Normalisation | None:
    """The input an openseg.pytorch checkpoint's ``config_dict`` (its JSON config, saved with the weights) trains on.

    openseg reads images in ``data.input_mode`` order ("BGR" in 39 of its 41
    configs: ``cv2.imread`` as is), then ``ToTensor`` and ``Normalize``:
    ``(x / div_value - mean) / std`` channel by channel in THAT order, so in
    0..255 units mean * div_value and std * div_value, in the network's order.
    A dict (or its JSON text) is only read, never run; anything missing or not
    a number -> None.

        >>> from_openseg({"data": {"input_mode": "BGR"}, "normalize": {"div_value": 255.0,
        ...     "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}).rgb
        False
    """
    if isinstance(config, str) and len(config) <= MAX_STATEMENT_CHARS:
        try:
            config = json.loads(config)
        except (ValueError, RecursionError):
            return None
    if not isinstance(config, dict) or not isinstance(config.get("data"), dict) \
            or not isinstance(config.get("normalize"), dict):
        return None
    mode, norm = config["data"].get("input_mode"), config["normalize"]
    mean, std, div = _triple(norm.get("mean")), _triple(norm.get("std")), norm.get("div_value", 1.0)
    if mode not in ("RGB", "BGR") or mean is None or std is None or min(std) <= 0 \
            or not isinstance(div, (int, float)) or isinstance(div, bool) or not 0 < div < math.inf:
        return None
    return Normalisation(tuple(m * div for m in mean), tuple(v * div for v in std), rgb=mode == "RGB")


# ---------------------------------------------------------------- on models
def _close(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(abs(x - y) <= 1e-3 for x, y in zip(a, b))


def _preprocessor_normalisation(model: Any) -> Normalisation | None:
    """An MMSeg model's own ``data_preprocessor`` (a SegDataPreProcessor): mean / std buffers, swap flag."""
    pre = getattr(model, "data_preprocessor", None)
    if pre is None or not getattr(pre, "_enable_normalize", False):
        return None
    try:
        mean = _triple([float(v) for v in pre.mean.flatten().tolist()])
        std = _triple([float(v) for v in pre.std.flatten().tolist()])
    except (AttributeError, TypeError, ValueError):
        return None
    if mean is None or std is None or min(std) <= 0:
        return None
    return Normalisation(mean, std, rgb=bool(getattr(pre, "channel_conversion", False)))


def normalisation_of(model: Any) -> tuple[Triple, Triple] | None:
    """``(mean, std)`` the model was trained with (0..255 units, RGB order), or None when it says nothing.

    Read from ``model.input_mean`` / ``model.input_std`` (set by
    :func:`ocrviz.from_checkpoint` from an MMSeg checkpoint's config, and
    saved with the weights by :func:`ocrviz.save_checkpoint`), else from an
    MMSeg model's own ``data_preprocessor``.  An MMSeg model whose
    preprocessor feeds it BGR images cannot take ocrviz's RGB input: that
    raises ``ValueError`` (load its checkpoint with ``ocrviz.from_checkpoint``,
    which reorders conv1 for RGB, or pass ``transform=``).
    """
    mean, std = _triple(getattr(model, "input_mean", None)), _triple(getattr(model, "input_std", None))
    if mean is not None and std is not None:
        return mean, std
    found = _preprocessor_normalisation(model)
    if found is None:
        return None
    if not found.rgb:
        raise ValueError(f"{type(model).__name__}'s data_preprocessor feeds it BGR images (bgr_to_rgb=False), "
                         f"ocrviz feeds RGB: load its checkpoint with ocrviz.from_checkpoint (which reorders "
                         f"conv1's input channels for RGB), or pass transform= that builds the BGR input")
    return found.mean, found.std


def input_normalisation(model: Any, mean: Sequence[float] | None = None,
                        std: Sequence[float] | None = None) -> tuple[Any, Any]:
    """``(mean, std)`` to normalise a uint8 image for ``model``: the caller's when given (either one),
    else the model's own (:func:`normalisation_of`), else ``(None, None)``: ImageNet's, ocrviz's default.

    The model's own statistics are returned as ``(None, None)`` too when they
    are ImageNet's (e.g. every MMSeg Cityscapes / ADE20K config), so that
    whatever ocrviz does only for the default input still applies.
    """
    if mean is not None or std is not None:
        return mean, std
    own = normalisation_of(model)
    if own is None or (_close(own[0], IMAGENET_MEAN) and _close(own[1], IMAGENET_STD)):
        return None, None
    return list(own[0]), list(own[1])


def warn_if_unread(meta: dict) -> None:
    """Warn when an MMSeg ``meta`` has a config text whose normalisation could not be read."""
    text = meta.get("cfg") or meta.get("config")
    if isinstance(text, str) and ("data_preprocessor" in text or "img_norm_cfg" in text) and from_meta(meta) is None:
        warnings.warn("the checkpoint's config names a normalisation that ocrviz could not read (only literal "
                      "mean=[...], std=[...] are read, the config is never run); the explorer will use "
                      "ImageNet's unless you pass mean= / std=", stacklevel=3)


def normalise(image: Any, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> Any:
    """H x W x 3 uint8 -> 1 x 3 x H x W float32 tensor ``(image / 255 - mean) / std``.

    ``mean`` / ``std``: three values each, in 0..1 or 0..255 units (MMSeg's); neither:
    ImageNet's, exactly as training normalises (``ocrviz.data.dataset.normalize``).
    ``normalise(image, *input_normalisation(model))`` feeds ``model`` as it was trained.
    """
    import numpy as np
    import torch

    from ocrviz.data.dataset import MEAN, STD, normalize

    if mean is None and std is None:
        return normalize(image)[None]                                            # 1 x 3 x H x W
    m = np.asarray(MEAN if mean is None else mean, np.float64)
    sd = np.asarray(STD if std is None else std, np.float64)
    if m.shape != (3,) or sd.shape != (3,) or (sd <= 0).any():
        raise ValueError(f"mean={mean!r}, std={std!r}: give three values each (std > 0), in 0..1 or 0..255 units")
    m, sd = (m / 255 if m.max() > 1 else m), (sd / 255 if sd.max() > 1 else sd)  # 0..255 units (MMSeg's)
    x = torch.as_tensor(np.ascontiguousarray(image)).movedim(-1, -3).float().div_(255.0)   # 3 x H x W
    return ((x - torch.tensor(m, dtype=torch.float32).view(3, 1, 1))
            / torch.tensor(sd, dtype=torch.float32).view(3, 1, 1))[None]          # 1 x 3 x H x W
