"""Models: the toy OCRNet / ASPP / FCN on a small dilated ResNet, and HRNetV2-W48 + OCR.

``create_model(name, num_classes=19, ...)`` is a plain dict lookup of builder
functions; each builder takes explicit keyword arguments.

    model = create_model("ocrnet", num_classes=8)          # random init, train mode
    model = create_model("aspp", num_classes=8, channels=96)

Toy-model defaults (chosen so that all three train on 2 CPU cores at 256 x 512
and carry heads of similar size, ~0.2-0.3 M parameters, so that differences in
the context they use are not differences in capacity):

* backbone ``DilatedResNet(widths=(16, 32, 64, 128))``: 128 channels at stride 8.
* ``"ocrnet"``: ``OCRHead`` with ``mid_channels=128, key_channels=64`` (the
  official 512 / 256 scaled by the same 1/4, keeping Ck = C/2), 1x1 aux head
  (HRNet-OCR), dropout 0.05.
* ``"aspp"``: ``ASPPHead`` with ``channels=64`` and rates (6, 12, 18) at stride 8,
  doubled at stride 4 so that the taps cover the same input pixels.
* ``"fcn"``: ``FCNHead`` with ``channels=192`` (a conv3x3 as large as the other heads).
* ``"sa"``: non-local self-attention :class:`~ocrviz.models.self_attention.SelfAttentionHead`
  (``channels=64, key_channels=32``).
* ``"psp"``: PSPNet pyramid pooling :class:`~ocrviz.models.psp.PSPHead` (``channels=64``,
  bins 1, 2, 3, 6).
* ``"da"``: DANet position + channel attention :class:`~ocrviz.models.danet.DAHead`
  (``channels=64``, Ck = 8).
* ``"cc"``: CCNet criss-cross attention, 2 passes :class:`~ocrviz.models.criss_cross.CCHead`
  (``channels=64``, Ck = 8).
* ``"hrnet_w48_ocr"``: :class:`ocrviz.models.hrnet.HRNetW48OCR` (official
  layout, 70.4 M parameters, stride 4), imported only when asked for.
"""
from __future__ import annotations

import difflib
from typing import Any, Callable, Sequence

from torch import nn

from .aspp import ASPPHead
from .backbone import DilatedResNet
from .criss_cross import CCHead
from .danet import DAHead
from .fcn import FCNHead
from .hook_point import HookPoint
from .ocr import ObjectAttentionBlock, OCRHead, SpatialGather, SpatialOCR
from .psp import PSPHead
from .segmodel import SegModel, check_input
from .self_attention import SelfAttentionHead

__all__ = ["create_model", "MODELS", "SegModel", "DilatedResNet", "OCRHead", "ASPPHead", "FCNHead",
           "SpatialGather", "SpatialOCR", "ObjectAttentionBlock", "HookPoint", "check_input",
           "SelfAttentionHead", "PSPHead", "DAHead", "CCHead"]

BACKBONE_WIDTHS = (16, 32, 64, 128)
ASPP_RATES_AT_STRIDE_8 = (6, 12, 18)


def _backbone(output_stride: int | None, widths: Sequence[int], dilated: bool = True) -> DilatedResNet:
    return DilatedResNet(output_stride=8 if output_stride is None else output_stride, widths=widths, dilated=dilated)


def build_ocrnet(num_classes: int, output_stride: int | None = None, *,
                 widths: Sequence[int] = BACKBONE_WIDTHS, dilated: bool = True, mid_channels: int = 128, key_channels: int = 64,
                 dropout: float = 0.05, aux_kernel_size: int = 1,
                 class_names: Sequence[str] | None = None, palette: Sequence[Sequence[int]] | None = None
                 ) -> SegModel:
    """DilatedResNet + OCRHead (official OCR math and key names, smaller widths)."""
    backbone = _backbone(output_stride, widths, dilated)
    head = OCRHead(backbone.out_channels, num_classes, mid_channels=mid_channels, key_channels=key_channels,
                   dropout=dropout, aux_kernel_size=aux_kernel_size)
    return SegModel(backbone, head, arch="ocrnet", class_names=class_names, palette=palette)


def build_aspp(num_classes: int, output_stride: int | None = None, *,
               widths: Sequence[int] = BACKBONE_WIDTHS, dilated: bool = True, channels: int = 64, rates: Sequence[int] | None = None,
               dropout: float = 0.1, class_names: Sequence[str] | None = None,
               palette: Sequence[Sequence[int]] | None = None) -> SegModel:
    """DilatedResNet + DeepLabV3 ASPP head; ``rates=None`` scales (6, 12, 18) by 8 / output_stride."""
    backbone = _backbone(output_stride, widths, dilated)
    if rates is None:
        rates = tuple(r * 8 // backbone.output_stride for r in ASPP_RATES_AT_STRIDE_8)
    head = ASPPHead(backbone.out_channels, num_classes, channels=channels, rates=rates, dropout=dropout)
    return SegModel(backbone, head, arch="aspp", class_names=class_names, palette=palette)


def build_fcn(num_classes: int, output_stride: int | None = None, *,
              widths: Sequence[int] = BACKBONE_WIDTHS, dilated: bool = True, channels: int = 192, dropout: float = 0.1,
              class_names: Sequence[str] | None = None, palette: Sequence[Sequence[int]] | None = None
              ) -> SegModel:
    """DilatedResNet + FCN head (no context module): the baseline."""
    backbone = _backbone(output_stride, widths, dilated)
    head = FCNHead(backbone.out_channels, num_classes, channels=channels, dropout=dropout)
    return SegModel(backbone, head, arch="fcn", class_names=class_names, palette=palette)


def build_sa(num_classes: int, output_stride: int | None = None, *,
             widths: Sequence[int] = BACKBONE_WIDTHS, dilated: bool = True, channels: int = 64,
             key_channels: int = 32, dropout: float = 0.1, class_names: Sequence[str] | None = None,
             palette: Sequence[Sequence[int]] | None = None) -> SegModel:
    """DilatedResNet + non-local self-attention head (every pixel to every pixel)."""
    backbone = _backbone(output_stride, widths, dilated)
    head = SelfAttentionHead(backbone.out_channels, num_classes, channels=channels, key_channels=key_channels,
                             dropout=dropout)
    return SegModel(backbone, head, arch="sa", class_names=class_names, palette=palette)


def build_psp(num_classes: int, output_stride: int | None = None, *,
              widths: Sequence[int] = BACKBONE_WIDTHS, dilated: bool = True, channels: int = 64,
              dropout: float = 0.1, class_names: Sequence[str] | None = None,
              palette: Sequence[Sequence[int]] | None = None) -> SegModel:
    """DilatedResNet + PSPNet pyramid pooling head (bins 1, 2, 3, 6)."""
    backbone = _backbone(output_stride, widths, dilated)
    head = PSPHead(backbone.out_channels, num_classes, channels=channels, dropout=dropout)
    return SegModel(backbone, head, arch="psp", class_names=class_names, palette=palette)


def build_da(num_classes: int, output_stride: int | None = None, *,
             widths: Sequence[int] = BACKBONE_WIDTHS, dilated: bool = True, channels: int = 64,
             key_channels: int | None = None, dropout: float = 0.1, class_names: Sequence[str] | None = None,
             palette: Sequence[Sequence[int]] | None = None) -> SegModel:
    """DilatedResNet + DANet dual attention head (PAM + CAM)."""
    backbone = _backbone(output_stride, widths, dilated)
    head = DAHead(backbone.out_channels, num_classes, channels=channels, key_channels=key_channels, dropout=dropout)
    return SegModel(backbone, head, arch="da", class_names=class_names, palette=palette)


def build_cc(num_classes: int, output_stride: int | None = None, *,
             widths: Sequence[int] = BACKBONE_WIDTHS, dilated: bool = True, channels: int = 64,
             key_channels: int | None = None, dropout: float = 0.1, class_names: Sequence[str] | None = None,
             palette: Sequence[Sequence[int]] | None = None) -> SegModel:
    """DilatedResNet + CCNet criss-cross attention head (2 passes of one module)."""
    backbone = _backbone(output_stride, widths, dilated)
    head = CCHead(backbone.out_channels, num_classes, channels=channels, key_channels=key_channels, dropout=dropout)
    return SegModel(backbone, head, arch="cc", class_names=class_names, palette=palette)


def build_hrnet_w48_ocr(num_classes: int, output_stride: int | None = None, **kw: Any) -> nn.Module:
    """HRNetV2-W48 + OCR in the official layout (lazy import: 70 M parameters)."""
    if output_stride not in (None, 4):
        raise ValueError(f"hrnet_w48_ocr has a fixed output stride of 4, got output_stride={output_stride}; "
                         f"leave output_stride out")
    try:
        from .hrnet import HRNetW48OCR
    except ImportError as err:  # pragma: no cover - only while hrnet.py is missing or broken
        raise ImportError(f"model 'hrnet_w48_ocr' needs ocrviz.models.hrnet, which failed to import: {err}") from err
    return HRNetW48OCR(num_classes=num_classes, **kw)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "ocrnet": build_ocrnet,
    "aspp": build_aspp,
    "fcn": build_fcn,
    "sa": build_sa,
    "psp": build_psp,
    "da": build_da,
    "cc": build_cc,
    "hrnet_w48_ocr": build_hrnet_w48_ocr,
}


def create_model(name: str, num_classes: int = 19, *, output_stride: int | None = None,
                 pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Build a randomly initialised model by name (train mode).

    Args:
        name: one of ``MODELS``: "ocrnet", "aspp", "fcn", "sa", "psp", "da", "cc", "hrnet_w48_ocr".
        num_classes: K (19 = Cityscapes).
        output_stride: 8 or 4 for the toy models (None = 8); hrnet is always 4.
        pretrained: not supported here (raises); trained weights come from
            ``ocrviz.load_model(name)`` or ``ocrviz.load_checkpoint(model, path)``.
        **kwargs: the builder's keyword arguments (see ``build_<name>``), e.g.
            ``widths``, ``mid_channels``, ``key_channels``, ``channels``,
            ``rates``, ``class_names``, ``palette``.

    Example::

        model = create_model("ocrnet", num_classes=8).eval()
        logits = model(torch.randn(1, 3, 256, 512))     # 1 x 8 x 256 x 512
    """
    if name not in MODELS:
        close = difflib.get_close_matches(str(name), MODELS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODELS)}{hint}")
    if pretrained:
        raise ValueError("create_model builds randomly initialised models (pretrained=True is not supported); "
                         "for trained weights use ocrviz.load_model('toycity-ocr') or "
                         "ocrviz.load_checkpoint(model, path)")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    model = MODELS[name](num_classes, output_stride, **kwargs)
    if not hasattr(model, "model_kwargs"):        # what save_checkpoint records to rebuild the same model
        built = {k: v for k, v in kwargs.items() if k not in ("class_names", "palette")}
        model.model_kwargs = built if output_stride is None else {**built, "output_stride": output_stride}
    return model
