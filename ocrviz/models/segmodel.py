"""SegModel: backbone + context head + upsampling, with input checks and hook points.

    image B x 3 x H x W
      -> backbone            -> hook_features  B x Cf x h x w   (h = H/s, w = W/s)
      -> head                -> (aux | None, main), both B x K x h x w
      -> bilinear upsample   -> hook_logits    B x K x H x W    (align_corners=True,
                                                                 as official HRNet-OCR)

Inputs must be normalised float images whose H and W are multiples of the
output stride s: then the feature map is exactly H/s x W/s, pixel (y, x)
belongs to cell (y // s, x // s), and cell (i, j)'s receptive field is centred
on pixel (i*s, j*s) (stride-2 convs with padding 1), which the click-a-pixel
views rely on.
(``HRNetW48OCR`` shares :func:`ocrviz.models.validation.validate_input`; the
multiple-of-stride and finite-values rules are added here by :func:`check_input`.)

Example::

    model = SegModel(DilatedResNet(), OCRHead(128, 5, 128, 64), arch="ocrnet").eval()
    logits = model(torch.randn(1, 3, 64, 128))                  # 1 x 5 x 64 x 128
    logits, aux = model(torch.randn(1, 3, 64, 128), return_aux=True)
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .hook_point import HookPoint
from .validation import validate_input

ARCHS = ("ocrnet", "aspp", "fcn", "sa", "psp", "da", "cc")


def check_input(x: Any, output_stride: int) -> None:
    """``validate_input`` plus: finite values, H and W multiples of ``output_stride``.

    Raises ``TypeError`` / ``ValueError`` whose message says what was given,
    what is allowed and how to fix it.
    """
    validate_input(x, output_stride)
    h, w = x.shape[-2:]
    if h % output_stride or w % output_stride:
        ph, pw = (math.ceil(v / output_stride) * output_stride for v in (h, w))
        raise ValueError(f"input {h}x{w} is not a multiple of the output stride {output_stride}; "
                         f"pad to {ph}x{pw} (ocrviz.data.images.pad_to_stride) or resize to a multiple "
                         f"of {output_stride}")
    if x.device.type != "meta":
        finite = torch.isfinite(x)
        if not bool(finite.all()):
            n_nan, n_inf = int(torch.isnan(x).sum()), int(torch.isinf(x).sum())
            where = tuple(int(i) for i in (~finite).nonzero()[0])
            raise ValueError(f"input holds {n_nan} NaN and {n_inf} infinite values (first at index "
                             f"{where}); only finite values are allowed. Check the image loading and "
                             f"normalisation (a zero std?), or replace them with torch.nan_to_num(x)")


def _upsample(t: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=True)


class SegModel(nn.Module):
    """Backbone + head -> logits at input resolution.

    Args:
        backbone: module with ``out_channels`` and ``output_stride``
            (e.g. :class:`~ocrviz.models.backbone.DilatedResNet`).
        head: module with ``num_classes`` whose forward returns
            ``(aux_or_None, main)`` at feature resolution.
        arch: one of ``ARCHS``: ``"ocrnet"``, ``"aspp"``, ``"fcn"``, ``"sa"``, ``"psp"``, ``"da"``,
            ``"cc"`` (read by capture and widgets).
        class_names: K names, or None.
        palette: K RGB triples (0-255), or None.

    ``forward(x, return_aux=False)``: x is B x 3 x H x W (float, normalised,
    H and W multiples of ``output_stride``); returns main logits B x K x H x W,
    or ``(main, aux)`` with ``return_aux=True`` (aux upsampled the same way;
    None for heads without an auxiliary output).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, arch: str,
                 class_names: Sequence[str] | None = None,
                 palette: Sequence[Sequence[int]] | None = None) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"arch={arch!r} is not one of {ARCHS}")
        self.backbone = backbone
        self.head = head
        self.hook_features = HookPoint()  # B x Cf x h x w
        self.hook_logits = HookPoint()    # B x K x H x W
        self.arch = arch
        self.output_stride = int(backbone.output_stride)
        self.num_classes = int(head.num_classes)
        self.class_names = class_names
        self.palette = palette

    @property
    def class_names(self) -> list[str] | None:
        return self._class_names

    @class_names.setter
    def class_names(self, names: Sequence[str] | None) -> None:
        if names is not None:
            names = [str(n) for n in names]
            if len(names) != self.num_classes:
                raise ValueError(f"got {len(names)} class names for a model with num_classes="
                                 f"{self.num_classes}; give exactly one name per class")
        self._class_names = names

    @property
    def palette(self) -> list[tuple[int, int, int]] | None:
        return self._palette

    @palette.setter
    def palette(self, colours: Sequence[Sequence[int]] | None) -> None:
        if colours is not None:
            colours = [tuple(int(v) for v in c) for c in colours]
            bad = [c for c in colours if len(c) != 3 or not all(0 <= v <= 255 for v in c)]
            if bad or len(colours) != self.num_classes:
                raise ValueError(f"palette needs {self.num_classes} RGB triples with values 0-255, got "
                                 f"{len(colours)} entries" + (f", e.g. invalid {bad[0]}" if bad else ""))
        self._palette = colours

    def forward(self, x: torch.Tensor, return_aux: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
        check_input(x, self.output_stride)
        size = x.shape[-2:]
        feats = self.hook_features(self.backbone(x))        # B x Cf x h x w
        aux, main = self.head(feats)                         # B x K x h x w (aux may be None)
        logits = self.hook_logits(_upsample(main, size))    # B x K x H x W
        if not return_aux:
            return logits
        return logits, (None if aux is None else _upsample(aux, size))

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, num_classes={self.num_classes}, output_stride={self.output_stride}"
