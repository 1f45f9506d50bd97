"""``from_checkpoint(path)``: a ready eval-mode model from any checkpoint file ocrviz recognises.

    model = ocrviz.from_checkpoint("ocrnet_hr48_4xb2-40k_cityscapes.pth")   # MMSeg
    model.class_names, model.palette, model.align_corners                    # from the file; False
    model.input_mean, model.input_std          # (123.675, 116.28, 103.53), (58.395, 57.12, 57.375): meta's config

The file is read like :func:`ocrviz.load_checkpoint` reads it (safetensors, or
``torch.load(weights_only=True)``; never pickle code).  Its layout (see
:mod:`ocrviz.checkpoint_layouts`) is recognised from the keys, the model's
size (HRNet width, class count, OCR widths, aux kernel) from the tensor shapes.
"""
from __future__ import annotations

import os
import warnings
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from . import checkpoint_layouts as layouts
from . import download, normalisation
from .checkpoints import CheckpointFormatError, CheckpointMismatchError, _check, _read

__all__ = ["from_checkpoint"]


def _recognised() -> str:
    return "\n".join(f"  - {name}: {text}" for name, text in layouts.DESCRIPTIONS.items())


def _not_recognised(path: Any, sd: dict[str, torch.Tensor], why: str) -> CheckpointFormatError:
    return CheckpointFormatError(
        f"{path}: {why}.\nThis file: {layouts.describe(sd)}.\nRecognised layouts:\n{_recognised()}\n"
        f"For another architecture, build the model yourself and use ocrviz.load_checkpoint(model, path).")


def _names_and_palette(meta: dict, num_classes: int) -> tuple[list[str] | None, list[tuple[int, ...]] | None]:
    """Class names and palette from ocrviz metadata, an ocrviz model card, or MMSeg's meta."""
    sources = [meta, meta.get("model_card") or {}, meta.get("dataset_meta") or {}]
    names = palette = None
    for src in sources:
        if not isinstance(src, dict):
            continue
        names = names or src.get("class_names") or src.get("CLASSES") or src.get("classes")
        palette = palette or src.get("palette") or src.get("PALETTE")
    if names is not None and not (isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names)):
        warnings.warn(f"the checkpoint's class names are not a list of strings ({str(names)[:80]!r}); ignored",
                      stacklevel=3)
        names = None
    if names is not None and len(names) != num_classes:
        warnings.warn(f"the checkpoint names {len(names)} classes but its weights have {num_classes}; "
                      f"class names ignored", stacklevel=3)
        names = None
    if palette is not None and not (isinstance(palette, (list, tuple)) and len(palette) == num_classes and all(
            isinstance(c, (list, tuple)) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
            for c in palette)):
        palette = None
    return (list(names) if names is not None else None,
            [tuple(rgb) for rgb in palette] if palette is not None else None)


def _set_normalisation(model: nn.Module, norm: normalisation.Normalisation | None) -> nn.Module:
    """``model.input_mean`` / ``input_std`` (0..255 units, RGB order) from the checkpoint, when it has them."""
    if norm is not None:
        rgb = norm.as_rgb()
        model.input_mean, model.input_std = rgb.mean, rgb.std
    return model


def _check_classes(path: Any, found: int, wanted: int | None, key: str, shape: tuple[int, ...]) -> None:
    if wanted is not None and wanted != found:
        raise CheckpointMismatchError(
            f"{path} has {found} classes ({key} {'x'.join(map(str, shape))}), not num_classes={wanted}; "
            f"leave num_classes out to use the checkpoint's", [], [], [(key, shape, (wanted, *shape[1:]))])


def _load(model: nn.Module, sd: dict[str, torch.Tensor], path: Any) -> nn.Module:
    model.load_state_dict(_check(model, sd, True, str(path)), strict=False)  # validated first
    return model.eval()


def _damaged(path: Any, what: str) -> CheckpointFormatError:
    return CheckpointFormatError(f"{path}: its ocrviz metadata is damaged ({what}); the weights may be fine: build "
                                 f"the model yourself and use ocrviz.load_checkpoint(model, path)")


def _declared(path: Any, meta: dict, card: dict) -> tuple[str, int, dict]:
    """(arch, num_classes, model_kwargs) the metadata declares, each checked for type."""
    from .models import MODELS

    arch = meta.get("arch") or card.get("arch")
    if not isinstance(arch, str) or arch not in MODELS:
        raise _damaged(path, f"arch={arch!r}; ocrviz builds {', '.join(MODELS)}")
    kwargs = meta.get("model_kwargs") or card.get("model_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise _damaged(path, f"model_kwargs is a {type(kwargs).__name__}, not a mapping")
    found = meta.get("num_classes") or card.get("num_classes")
    if arch != "hrnet_w48_ocr" and (not isinstance(found, int) or isinstance(found, bool) or found < 1):
        raise _damaged(path, f"num_classes={found!r}, not a positive integer")
    return arch, found, dict(kwargs)


class _SkipInit(TorchFunctionMode):
    """In-place ops on meta tensors (the weight initialisers) do nothing: a shape-only model builds in
    milliseconds instead of seconds (torch's meta kernels for normal_ and friends are slow)."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        name = getattr(func, "__name__", "")
        if name.endswith("_") and not name.endswith("__") and args and isinstance(args[0], torch.Tensor) \
                and args[0].is_meta:
            return args[0]
        return func(*args, **(kwargs or {}))


def _fits_before_building(path: Any, sd: dict[str, torch.Tensor], arch: str, num_classes: int,
                          kwargs: dict) -> None:
    """Build the declared model on the meta device (shapes only, no memory) and check the file's tensors
    against it, so that a metadata claim (num_classes=2000000) never allocates the model it describes."""
    from .models import create_model

    try:
        with torch.device("meta"), _SkipInit():
            skeleton = create_model(arch, num_classes=num_classes, **kwargs)
    except (TypeError, ValueError) as e:
        raise _damaged(path, f"{arch}(num_classes={num_classes}, **{kwargs!r}) cannot be built: {e}") from None
    target = skeleton.state_dict()
    wrong = [(k, tuple(v.shape), tuple(target[k].shape)) for k, v in sd.items()
             if k in target and tuple(v.shape) != tuple(target[k].shape)]
    if wrong:
        k, have, want = wrong[0]
        raise CheckpointMismatchError(
            f"{path}: its metadata declares {arch} with num_classes={num_classes} and {kwargs or 'default'} "
            f"options, but its tensors do not fit that model ({len(wrong)} shape conflicts, e.g. {k}: file "
            f"{'x'.join(map(str, have))} vs declared {'x'.join(map(str, want))}); nothing was built. The "
            f"metadata is damaged or was edited", [], [], wrong)
    _check(skeleton, sd, True, str(path))          # missing / unexpected keys, still before building


def _own(path: Any, sd: dict[str, torch.Tensor], meta: dict, num_classes: int | None) -> nn.Module:
    from .models import create_model

    card = meta.get("model_card") if isinstance(meta.get("model_card"), dict) else {}
    arch, found, kwargs = _declared(path, meta, card)
    if arch == "hrnet_w48_ocr":
        try:
            geometry = layouts.hrnet_geometry(sd)
        except ValueError as err:
            raise _not_recognised(path, sd, f"its metadata names {arch}, but {err}") from None
        found = geometry.pop("num_classes")
        kwargs = {**geometry, **kwargs}
    _check_classes(path, found, num_classes, "num_classes (metadata)", (found,))
    _fits_before_building(path, sd, arch, found, kwargs)
    names, palette = _names_and_palette(meta, found)
    mean, std = (normalisation._triple(meta.get(k) or card.get(k)) for k in ("input_mean", "input_std"))
    if std is not None and min(std) <= 0:
        raise _damaged(path, f"input_std={list(std)} has a value <= 0 (the input would be divided by it)")
    model = create_model(arch, num_classes=found, class_names=names, palette=palette, **kwargs)
    if card:
        model.card = card
    if mean is not None and std is not None:
        _set_normalisation(model, normalisation.Normalisation(mean, std))
    return _load(model, sd, path)


def _is_mmseg(sd: dict[str, torch.Tensor], meta: dict) -> bool:
    """An MMSeg segmentor's state dict (backbone / decode_head) with its config in meta."""
    return any(k.startswith("decode_head.") for k in sd) and any(k.startswith("backbone.") for k in sd) \
        and isinstance(meta.get("cfg") or meta.get("config"), str)


def _mmseg_native(path: Any, sd: dict[str, torch.Tensor], meta: dict, num_classes: int | None, why: str) -> nn.Module:
    """MMSeg's own model from the config in meta (:mod:`ocrviz.checkpoint_mmseg`), with ocrviz's attributes."""
    from . import checkpoint_mmseg

    model = checkpoint_mmseg.build(path, sd, meta, why)
    heads = model.decode_head if isinstance(model.decode_head, nn.ModuleList) else [model.decode_head]
    found = int(heads[-1].num_classes)
    _check_classes(path, found, num_classes, "decode_head.num_classes", (found,))
    names, palette = _names_and_palette(meta, found)
    model.num_classes, model.class_names, model.palette = found, names, palette
    model.align_corners = bool(getattr(heads[-1], "align_corners", False))
    model.checkpoint_layout = "mmseg-native"
    norm = normalisation.from_meta(meta)
    if norm is None:
        normalisation.warn_if_unread(meta)
    else:
        model.checkpoint_input_order = "rgb" if norm.rgb else "bgr"
        conv = checkpoint_mmseg.first_rgb_conv(model)
        if not norm.rgb and conv is not None:      # trained on BGR: take RGB instead, the same function
            with torch.no_grad():
                conv.weight.copy_(conv.weight.flip(1))
    return _set_normalisation(model, norm)


def from_checkpoint(path: str | os.PathLike, *, num_classes: int | None = None,
                    map_location: Any = "cpu") -> nn.Module:
    """Build the model a checkpoint file holds, load it, and return it in eval mode.

    Recognised layouts (from the keys; sizes from the tensor shapes):

    * ocrviz's own checkpoints (``save_checkpoint``, the shipped ToyCity models);
    * official HRNet-OCR releases: a raw state dict, ``model.``-prefixed keys
      with ``loss.*``, ``{"state_dict": ...}``, DataParallel ``module.model.*``
      with ``module.loss.*``;
    * MMSegmentation OCRNet on HRNetV2 (W18, W48, ...; ``{meta, state_dict}``):
      class names and palette from ``meta`` (CLASSES / PALETTE, or
      ``dataset_meta``), ``align_corners=False`` as MMSeg resizes, and the
      input normalisation from the config in ``meta`` (``cfg`` text of MMSeg
      1.x: ``data_preprocessor``; ``config`` text of 0.x: ``img_norm_cfg``;
      parsed, never run; see :mod:`ocrviz.normalisation`) as
      ``model.input_mean`` / ``model.input_std`` (0..255 units, RGB order),
      which the explorer and ``ocrviz explain`` then use by default.  A
      config that feeds the network BGR (``bgr_to_rgb=False``,
      ``to_rgb=False``) gets conv1's input channels reversed, so that the
      model takes RGB like every ocrviz model (``model.checkpoint_input_order
      == "bgr"``); without a readable config both stay unset (ImageNet's);
    * openseg.pytorch HRNet_W48_OCR (3x3 aux conv; OCR conv biases folded into
      the BatchNorms that follow them: the same function); its ``config_dict``
      (read as data) gives the input order (``data.input_mode``, BGR in most
      configs: conv1 reversed as for MMSeg) and ``normalize`` mean / std;
    * ``"mmseg:NAME"``: an official MMSeg checkpoint, downloaded once into the
      cache and verified (:mod:`ocrviz.download`).

    Official, MMSeg and openseg files become an
    :class:`~ocrviz.models.hrnet.HRNetW48OCR` at the file's width.  ``num_classes``,
    when given, must equal the checkpoint's.  Any other file raises
    :class:`~ocrviz.checkpoints.CheckpointFormatError` naming the recognised
    layouts and describing the file (first keys, entry counts).

    Example::

        model = ocrviz.from_checkpoint("hrnet_ocr_cs_8162_torch11.pth")   # official W48, 19 classes
        logits, cache = ocrviz.run_with_cache(model, x)
    """
    if isinstance(path, str) and path.startswith(download.PREFIX):
        path = download.fetch(path)
    sd, meta = _read(path, map_location)
    if "ocrviz_version" in meta or isinstance(meta.get("model_card"), dict):
        return _own(path, sd, meta, num_classes)
    stripped = layouts.strip_wrappers(sd)
    layout = layouts.detect(stripped)
    if layout is None:
        reason = layouts.unsupported_reason(stripped)
        if _is_mmseg(stripped, meta):
            return _mmseg_native(path, stripped, meta, num_classes, reason or "it is not an MMSeg OCRNet on HRNetV2")
        raise _not_recognised(path, sd, f"not a layout ocrviz can map: {reason}" if reason
                              else "not a checkpoint layout ocrviz recognises")
    mapped = layouts.to_ocrviz(stripped, layout)
    try:
        geometry = layouts.hrnet_geometry(mapped)
    except ValueError as err:
        if layout == "mmseg" and _is_mmseg(stripped, meta):
            return _mmseg_native(path, stripped, meta, num_classes, f"its HRNet is not ocrviz's: {err}")
        raise _not_recognised(path, sd, f"it looks like the {layout} layout, but {err}") from None
    found = geometry.pop("num_classes")
    _check_classes(path, found, num_classes, "cls_head.weight", tuple(mapped["cls_head.weight"].shape))
    names, palette = _names_and_palette(meta, found)
    norm = (normalisation.from_meta(meta) if layout == "mmseg" else
            normalisation.from_openseg(meta.get("config_dict")) if layout == "openseg" else None)
    if layout == "mmseg" and norm is None:
        normalisation.warn_if_unread(meta)
    if layout == "openseg" and norm is None and "config_dict" in meta:
        warnings.warn("the checkpoint's openseg config_dict has no readable data.input_mode / normalize "
                      "(mean, std, div_value); the explorer will use ImageNet's RGB statistics", stacklevel=2)
    if norm is not None and not norm.rgb:      # trained on BGR: conv1 reordered to take RGB, the same function
        mapped["conv1.weight"] = mapped["conv1.weight"].flip(1)
    from .models.hrnet import HRNetW48OCR

    model = HRNetW48OCR(num_classes=found, **geometry, align_corners=layout != "mmseg",
                        class_names=names, palette=palette)
    model.checkpoint_layout = layout
    if norm is not None:
        model.checkpoint_input_order = "rgb" if norm.rgb else "bgr"
    return _load(_set_normalisation(model, norm), mapped, path)
