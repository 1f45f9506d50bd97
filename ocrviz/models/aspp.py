"""DeepLabV3's ASPP head: fixed-geometry context, the foil to OCR's learned one.

Atrous Spatial Pyramid Pooling (Chen et al. 2017, "Rethinking Atrous
Convolution", arXiv 1706.05587), five parallel branches on the feature map::

    branch0  conv1x1                  -> BN -> ReLU      the pixel itself
    branch1  conv3x3, dilation r1     -> BN -> ReLU      9 taps r1 cells apart
    branch2  conv3x3, dilation r2     -> BN -> ReLU
    branch3  conv3x3, dilation r3     -> BN -> ReLU
    pool     global avg pool -> conv1x1 -> BN -> ReLU -> broadcast to h x w
    concat (5C) -> project: conv1x1 (no bias) -> BN -> ReLU
    -> dropout (Dropout2d) -> classifier conv1x1 -> K

As in the paper, the classifier follows the projection directly.  torchvision's
``DeepLabHead`` inserts an extra conv3x3-BN-ReLU there; we leave it out so that
a pixel's logits depend on its own projected vector only, which keeps "which
taps did this pixel use" exact: the projection pre-activation of a pixel p is
``sum_b W_b @ branch_b(p)`` (the conv has no bias), with ``W_b`` the slice of the
projection weight that reads branch b (:meth:`ASPPHead.projection_weights`).

Rates.  DeepLabV3 uses (6, 12, 18) at output stride 16 and (12, 24, 36) at
stride 8 on 513 x 513 crops, i.e. on a 33 or 65 cell map: the largest rate
reaches about half the map.  Our demo images are 256 x 512 at stride 8, a
32 x 64 map, so (6, 12, 18) keeps that proportion: the taps sit 48, 96 and
144 px from the pixel and mostly stay inside the map (at rate 18 a row has at
most one valid vertical tap, which is the paper's point about large rates
degenerating towards 1x1, and why the image-pooling branch exists).
``create_model`` doubles the rates at output stride 4.

Shapes: B batch, Cin input channels, C branch channels (256 in DeepLabV3),
K classes, h x w feature map.

The pooling branch has BatchNorm on a 1 x 1 map, so training needs a batch of
at least 2 (as in torchvision); eval mode takes any batch.

Example::

    head = ASPPHead(in_channels=128, num_classes=5, channels=64)
    aux, main = head(torch.randn(2, 128, 32, 64))   # aux is None; main 2 x 5 x 32 x 64
"""
from __future__ import annotations

import numbers
from typing import Sequence

import torch
from torch import nn

from .hook_point import HookPoint

BRANCHES = ("branch0", "branch1", "branch2", "branch3", "pool")


def _conv_bn_relu(cin: int, cout: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (kernel // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class ASPPHead(nn.Module):
    """DeepLabV3 ASPP head: feature map -> ``(None, main logits)`` at feature resolution.

    Args:
        in_channels: backbone channels (Cin).
        num_classes: K.
        channels: width C of every branch and of the projection (256 in DeepLabV3).
        rates: the three dilation rates of branch1..branch3 (see module docstring).
        dropout: Dropout2d after the projection (0.1, as MMSegmentation).

    Attributes: ``rates``, ``channels``, ``num_classes``, ``branch_names``;
    modules ``branch0``..``branch3``, ``pool``, ``project`` (``project[0]`` is
    the 5C -> C conv, input slices in ``branch_names`` order), ``dropout``,
    ``classifier``.
    """

    branch_names = BRANCHES

    def __init__(self, in_channels: int, num_classes: int, channels: int = 256,
                 rates: Sequence[int] = (6, 12, 18), dropout: float = 0.1) -> None:
        super().__init__()
        rates = tuple(rates)
        if len(rates) != 3 or not all(isinstance(r, numbers.Integral) and r >= 1 for r in rates):
            raise ValueError(f"rates={rates!r}: give three positive integer dilation rates, one per "
                             f"dilated branch, e.g. (6, 12, 18) at output stride 8 on a 32 x 64 map")
        self.rates = tuple(int(r) for r in rates)
        self.channels = channels
        self.num_classes = num_classes
        self.branch0 = _conv_bn_relu(in_channels, channels, 1)
        self.branch1 = _conv_bn_relu(in_channels, channels, 3, rates[0])
        self.branch2 = _conv_bn_relu(in_channels, channels, 3, rates[1])
        self.branch3 = _conv_bn_relu(in_channels, channels, 3, rates[2])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), *_conv_bn_relu(in_channels, channels, 1))
        self.project = nn.Sequential(nn.Conv2d(len(BRANCHES) * channels, channels, 1, bias=False),
                                     nn.BatchNorm2d(channels), nn.ReLU())
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        self.hook_branch0 = HookPoint()  # B x C x h x w
        self.hook_branch1 = HookPoint()  # B x C x h x w
        self.hook_branch2 = HookPoint()  # B x C x h x w
        self.hook_branch3 = HookPoint()  # B x C x h x w
        self.hook_pool = HookPoint()     # B x C x h x w (one vector per image, broadcast)
        self.hook_project = HookPoint()  # B x C x h x w (after BN and ReLU, before dropout)

    def projection_weights(self) -> dict[str, torch.Tensor]:
        """``{branch name: W_b}``, each C x C: the projection conv's input slice for that branch.

        The projection pre-activation (before BN) at pixel p is exactly
        ``sum_b W_b @ branch_b(p)``; ``W_b @ hook_b`` is branch b's share.
        Views of the live weight (no copy).
        """
        w = self.project[0].weight[:, :, 0, 0]                 # C x 5C
        return dict(zip(BRANCHES, w.split(self.channels, dim=1)))  # name -> C x C

    def forward(self, x: torch.Tensor) -> tuple[None, torch.Tensor]:
        b, _, h, w = x.shape
        pooled = self.pool(x)                                          # B x C x 1 x 1
        b0 = self.hook_branch0(self.branch0(x))                        # B x C x h x w
        b1 = self.hook_branch1(self.branch1(x))                        # B x C x h x w
        b2 = self.hook_branch2(self.branch2(x))                        # B x C x h x w
        b3 = self.hook_branch3(self.branch3(x))                        # B x C x h x w
        pool = self.hook_pool(pooled.expand(b, self.channels, h, w))   # B x C x h x w
        stacked = torch.cat([b0, b1, b2, b3, pool], 1)                 # B x 5C x h x w
        projected = self.hook_project(self.project(stacked))           # B x C x h x w
        main = self.classifier(self.dropout(projected))                # B x K x h x w
        return None, main
