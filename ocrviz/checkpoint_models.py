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

from . import checkpoint_layouts as layouts
from . import normalisation
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
    if names is not None and len(names) != num_classes:
        warnings.warn(f"the checkpoint names {len(names)} classes but its weights have {num_classes}; "
                      f"class names ignored", stacklevel=3)
        names = None
    if palette is not None and len(palette) != num_classes:
        palette = None
    return ([str(n) for n in names] if names is not None else None,
            [tuple(int(c) for c in rgb) for rgb in palette] if palette is not None else None)


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


def _own(path: Any, sd: dict[str, torch.Tensor], meta: dict, num_classes: int | None) -> nn.Module:
    from .models import MODELS, create_model

    card = meta.get("model_card") if isinstance(meta.get("model_card"), dict) else {}
    arch = meta.get("arch") or card.get("arch")
    if arch not in MODELS:
        raise _not_recognised(path, sd, f"its metadata names arch={arch!r}, which ocrviz does not build "
                                        f"(known: {', '.join(MODELS)})")
    kwargs = dict(meta.get("model_kwargs") or card.get("model_kwargs") or {})
    found = int(meta.get("num_classes") or card.get("num_classes") or 0)
    if arch == "hrnet_w48_ocr":
        geometry = layouts.hrnet_geometry(sd)
        found = geometry.pop("num_classes")
        kwargs = {**geometry, **kwargs}
    if not found:
        raise _not_recognised(path, sd, "its ocrviz metadata has no num_classes")
    _check_classes(path, found, num_classes, "num_classes (metadata)", (found,))
    names, palette = _names_and_palette(meta, found)
    model = create_model(arch, num_classes=found, class_names=names, palette=palette, **kwargs)
    if card:
        model.card = card
    mean, std = (normalisation._triple(meta.get(k) or card.get(k)) for k in ("input_mean", "input_std"))
    if mean is not None and std is not None:
        _set_normalisation(model, normalisation.Normalisation(mean, std))
    return _load(model, sd, path)


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
      the BatchNorms that follow them: the same function).

    Official, MMSeg and openseg files become an
    :class:`~ocrviz.models.hrnet.HRNetW48OCR` at the file's width.  ``num_classes``,
    when given, must equal the checkpoint's.  Any other file raises
    :class:`~ocrviz.checkpoints.CheckpointFormatError` naming the recognised
    layouts and describing the file (first keys, entry counts).

    Example::

        model = ocrviz.from_checkpoint("hrnet_ocr_cs_8162_torch11.pth")   # official W48, 19 classes
        logits, cache = ocrviz.run_with_cache(model, x)
    """
    sd, meta = _read(path, map_location)
    if "ocrviz_version" in meta or isinstance(meta.get("model_card"), dict):
        return _own(path, sd, meta, num_classes)
    stripped = layouts.strip_wrappers(sd)
    layout = layouts.detect(stripped)
    if layout is None:
        reason = layouts.unsupported_reason(stripped)
        raise _not_recognised(path, sd, f"not a layout ocrviz can map: {reason}" if reason
                              else "not a checkpoint layout ocrviz recognises")
    mapped = layouts.to_ocrviz(stripped, layout)
    try:
        geometry = layouts.hrnet_geometry(mapped)
    except ValueError as err:
        raise _not_recognised(path, sd, f"it looks like the {layout} layout, but {err}") from None
    found = geometry.pop("num_classes")
    _check_classes(path, found, num_classes, "cls_head.weight", tuple(mapped["cls_head.weight"].shape))
    names, palette = _names_and_palette(meta, found)
    norm = normalisation.from_meta(meta) if layout == "mmseg" else None
    if layout == "mmseg" and norm is None:
        normalisation.warn_if_unread(meta)
    if norm is not None and not norm.rgb:      # trained on BGR: conv1 reordered to take RGB, the same function
        mapped["conv1.weight"] = mapped["conv1.weight"].flip(1)
    from .models.hrnet import HRNetW48OCR

    model = HRNetW48OCR(num_classes=found, **geometry, align_corners=layout != "mmseg",
                        class_names=names, palette=palette)
    model.checkpoint_layout = layout
    if norm is not None:
        model.checkpoint_input_order = "rgb" if norm.rgb else "bgr"
    return _load(_set_normalisation(model, norm), mapped, path)
