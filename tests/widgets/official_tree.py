"""An official-HRNet-OCR-shaped model for the align_corners tests, written the way seg_hrnet_ocr.py is:
the setting lives in a module global set from the config in ``__init__`` (``global ALIGN_CORNERS``), the
branches are resized with it before the OCR head, the model returns ``[aux, main]`` at 1/4 resolution,
and the official test code resizes that output with ``config.MODEL.ALIGN_CORNERS`` (True by default).
Imported by name; not a conftest."""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "capture"))
from test_foreign import C_IN, HRNetOCRHead  # noqa: E402

ALIGN_CORNERS = None


class HighResolutionNet(nn.Module):
    """Two branches (1/4 and 1/8) -> concat at 1/4 -> the official OCR head."""

    def __init__(self, align_corners: bool = True) -> None:
        global ALIGN_CORNERS
        super().__init__()
        ALIGN_CORNERS = align_corners                  # config.MODEL.ALIGN_CORNERS
        self.stem = nn.Conv2d(3, C_IN // 2, 4, stride=4)
        self.down = nn.Conv2d(C_IN // 2, C_IN // 2, 3, stride=2, padding=1)
        self.ocr = HRNetOCRHead()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x0 = self.stem(x)                                                  # B x C/2 x H/4 x W/4
        x1 = F.interpolate(self.down(x0), size=x0.shape[-2:], mode="bilinear", align_corners=ALIGN_CORNERS)
        return self.ocr(torch.cat([x0, x1], 1))                           # [aux, main], 1/4 resolution
