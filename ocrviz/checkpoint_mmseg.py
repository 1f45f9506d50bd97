"""MMSeg checkpoints ocrviz's HRNet-OCR cannot hold (ResNet-101-D8, HRNetV2-W18-Small): MMSeg's own model.

MMSeg's OCRNet zoo has, besides HRNetV2-W18/W48 (mapped onto
:class:`~ocrviz.models.hrnet.HRNetW48OCR`), ``ocrnet_r101-d8`` (a
``CascadeEncoderDecoder`` whose soft regions come from an FCN head on a dilated
ResNet) and ``ocrnet_hr18s`` (HRNet with fewer modules and blocks).  For those,
when MMSeg is installed, the model is built by MMSeg from the config stored in
the checkpoint's ``meta`` (``cfg`` of 1.x, ``config`` of 0.x), so that
capture's foreign adapter explains MMSeg's own code.

The config is never run: :func:`model_config` parses the text and converts the
``model = dict(...)`` statement from literals only (``dict(...)`` calls with
keyword arguments, lists, tuples, numbers, strings, booleans, None, and names
of other such top-level statements, as 0.x configs write ``norm_cfg=norm_cfg``).
Anything else (a call, an attribute, ``__import__``) makes the config
unreadable.  SyncBN (which needs a process group) becomes BN: the same function
in eval mode.
"""
from __future__ import annotations

import ast
from typing import Any

import torch
from torch import nn

from . import normalisation
from .checkpoint_errors import CheckpointFormatError

INSTALL = "pip install 'mmsegmentation>=1.2.2,<1.3' 'mmengine>=0.10.7,<0.11' mmcv (or ocrviz's `mmseg` extra)"
_DROP = ("pretrained", "init_cfg", "train_cfg", "loss_decode")


class _Unreadable(ValueError):
    pass


def _convert(node: ast.AST, names: dict[str, ast.AST], depth: int = 0, seen: frozenset = frozenset()) -> Any:
    """A literal value from ``node``; dict(...) calls and names of other literal statements allowed."""
    if depth > 64:
        raise _Unreadable("nested too deeply")
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
            and isinstance(node.operand.value, (int, float)):
        return -node.operand.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_convert(e, names, depth + 1, seen) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict) and all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in node.keys):
        return {k.value: _convert(v, names, depth + 1, seen) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args \
            and all(kw.arg is not None for kw in node.keywords):
        return {kw.arg: _convert(kw.value, names, depth + 1, seen) for kw in node.keywords}
    if isinstance(node, ast.Name) and node.id in names and node.id not in seen:     # no name refers to itself
        return _convert(names[node.id], names, depth + 1, seen | {node.id})
    raise _Unreadable(f"{type(node).__name__} at line {getattr(node, 'lineno', '?')} is not a literal")


def model_config(meta: dict) -> dict | None:
    """The ``model`` dict of an MMSeg checkpoint's config (``meta['cfg']`` or ``meta['config']``), or None.

    Parsed and converted from literals only (see the module docstring); never run.
    """
    for key in ("cfg", "config"):
        text = meta.get(key)
        if not isinstance(text, str):
            continue
        names = normalisation.top_level_statements(text, names=None)
        if "model" not in names:
            continue
        try:
            model = _convert(names["model"], names, seen=frozenset({"model"}))
        except (_Unreadable, RecursionError):
            continue
        if isinstance(model, dict) and isinstance(model.get("type"), str):
            return model
    return None


def _for_inference(cfg: Any) -> Any:
    """SyncBN -> BN, pretrained / init / loss entries dropped (weights come from the checkpoint)."""
    if isinstance(cfg, dict):
        out = {k: _for_inference(v) for k, v in cfg.items() if k not in _DROP}
        if out.get("type") in ("SyncBN", "MMSyncBN"):
            out["type"] = "BN"
        return out
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(_for_inference(v) for v in cfg)
    return cfg


def _registry() -> Any:
    try:
        from mmseg.registry import MODELS
        from mmseg.utils import register_all_modules
    except ImportError as e:
        raise ImportError(f"MMSeg cannot be imported ({type(e).__name__}: {e})") from None
    register_all_modules(init_default_scope=False)
    return MODELS


def build(path: Any, sd: dict[str, torch.Tensor], meta: dict, why: str) -> nn.Module:
    """MMSeg's own model for the checkpoint, built from its config, loaded (strictly) and in eval mode.

    ``why``: why ocrviz's own HRNet-OCR cannot hold it (said in errors).
    Raises :class:`CheckpointFormatError` when the config is absent or
    unreadable, MMSeg is not importable, or the weights do not fit.
    """
    cfg = model_config(meta)
    if cfg is None:
        raise CheckpointFormatError(
            f"{path}: {why}, so ocrviz would build MMSeg's own model from the config in the checkpoint's meta, but "
            f"it has no readable `model = dict(...)` (only literal configs are read, never run)")
    try:
        registry = _registry()
    except ImportError as e:
        raise CheckpointFormatError(f"{path}: {why}; building MMSeg's own model for it needs MMSeg: {e}. "
                                    f"Install it: {INSTALL}") from None
    cfg = _for_inference(cfg)
    cfg.pop("data_preprocessor", None)          # ocrviz normalises (model.input_mean / input_std below)
    try:
        model = registry.build(cfg)
    except Exception as e:  # noqa: BLE001  (any registry / constructor failure is a config problem)
        raise CheckpointFormatError(f"{path}: MMSeg could not build the model its config describes "
                                    f"({type(e).__name__}: {str(e)[:200]})") from None
    from .checkpoints import _check

    model.load_state_dict(_check(model, sd, True, str(path)), strict=False)      # validated first
    return model.eval()


def first_rgb_conv(model: nn.Module) -> nn.Conv2d | None:
    """The convolution that takes the image (the first Conv2d with 3 input channels)."""
    return next((m for m in model.modules() if isinstance(m, nn.Conv2d) and m.in_channels == 3), None)
