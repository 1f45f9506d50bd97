"""The no-context baseline head: what a pixel's own (backbone) receptive field gives.

FCN head as in MMSegmentation's ``FCNHead(num_convs=1)`` / torchvision's
``FCNHead``: conv3x3 (no bias) -> BN -> ReLU -> Dropout2d -> conv1x1 -> K.
No pooling, no attention: any context the prediction uses comes from the
backbone's receptive field plus one 3 x 3 neighbourhood, which makes it the
baseline against which OCR's and ASPP's long-range context is measured.

Shapes: B batch, Cin input channels, C head channels, K classes, h x w map.

Example::

    head = FCNHead(in_channels=128, num_classes=5, channels=128)
    aux, main = head(torch.randn(2, 128, 32, 64))   # aux is None; main 2 x 5 x 32 x 64
"""
from __future__ import annotations

import torch
from torch import nn


class FCNHead(nn.Module):
    """Feature map -> ``(None, main logits)`` at feature resolution.

    Args:
        in_channels: backbone channels (Cin).
        num_classes: K.
        channels: width C of the conv3x3 (defaults to ``in_channels``).
        dropout: Dropout2d before the classifier (0.1, as MMSegmentation).
    """

    def __init__(self, in_channels: int, num_classes: int, channels: int | None = None,
                 dropout: float = 0.1) -> None:
        super().__init__()
        channels = in_channels if channels is None else channels
        self.channels = channels
        self.num_classes = num_classes
        self.conv = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels), nn.ReLU())
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> tuple[None, torch.Tensor]:
        feats = self.conv(x)                              # B x C x h x w
        return None, self.classifier(self.dropout(feats))  # B x K x h x w
