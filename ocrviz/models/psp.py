"""PSPNet's pyramid pooling head: context from fixed average-pooled bins.

Pyramid Scene Parsing (Zhao et al. 2017, arXiv 1612.01105), as
MMSegmentation's ``PSPHead`` builds it, at ToyCity size::

    for b in bins (1, 2, 3, 6):
        adaptive avg pool to b x b -> conv1x1 (Cf -> C) -> BN -> ReLU    pooled_b
        -> bilinear upsample to h x w (align_corners=False)              up_b
    bottleneck conv3x3 (Cf + 4C -> C) -> BN -> ReLU on [features, up_1, up_2, up_3, up_6]
    -> Dropout2d -> classifier conv1x1 -> K

The context is fixed geometry: a pixel reads each level's bins through the
bilinear upsampling, and each bin is the plain mean of the cells it covers.

What capture sees, and how a context producer reads pixel p's context:

* ``head.hook_pooled_1``, ``hook_pooled_2``, ``hook_pooled_3``,
  ``hook_pooled_6``: B x C x b x b, the level's bins after conv-BN-ReLU
  (one per level, in ``head.bins`` order; the upsampled maps are not kept).
* ``head.hook_bottleneck``: B x C x h x w, the fused map before dropout.

  Bin (u, v) of level b averages cells ``rows floor(u*h/b) .. ceil((u+1)*h/b)-1``
  x ``cols floor(v*w/b) .. ceil((v+1)*w/b)-1`` (``F.adaptive_avg_pool2d``; bins
  may overlap when b does not divide h or w).  Pixel p = (i, j) reads level
  b's bins with the bilinear weights of ``F.interpolate(size=(h, w),
  mode="bilinear", align_corners=False)`` (at most 2 x 2 bins, weights summing
  to 1), so its context over cells at level b is ``sum_bins weight(bin) *
  uniform(bin cells)``: exact as a footprint; how the four levels (and the
  pixel's own features, also fed to the bottleneck) are weighted against each
  other is a convention the producer must state (e.g. equal level weights,
  or the norms of the bottleneck's input slices).

Shapes: B batch, Cf backbone channels, C per-level channels (and bottleneck
width), K classes, h x w feature map.  Training needs a batch of at least 2
(BatchNorm on the 1 x 1 level), as in MMSegmentation; eval takes any batch.

Example::

    head = PSPHead(in_channels=128, num_classes=5, channels=64)
    aux, main = head(torch.randn(2, 128, 32, 64))   # aux is None; main 2 x 5 x 32 x 64
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .hook_point import HookPoint

BINS = (1, 2, 3, 6)


def conv_bn_relu(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class PSPHead(nn.Module):
    """Feature map -> ``(None, main logits)`` at feature resolution, through pyramid pooling.

    Args:
        in_channels: backbone channels (Cf).
        num_classes: K.
        channels: width C of each pooled level and of the bottleneck (512 in MMSeg; 64 here).
        bins: the pooled grid sizes, (1, 2, 3, 6) as in the paper (fixed here: one hook per level).
        dropout: Dropout2d before the classifier (0.1, as MMSegmentation).

    Attributes: ``bins``, ``channels``; modules ``levels`` (one conv-BN-ReLU per
    bin size, in ``bins`` order), ``bottleneck`` (its conv's input channels are
    [features (Cf), level 1 (C), level 2 (C), level 3 (C), level 6 (C)]),
    ``dropout``, ``classifier``.
    """

    def __init__(self, in_channels: int, num_classes: int, channels: int = 64,
                 bins: Sequence[int] = BINS, dropout: float = 0.1) -> None:
        super().__init__()
        if tuple(bins) != BINS:
            raise ValueError(f"bins={tuple(bins)!r}: this head has one hook per level of {BINS} (PSPNet's); "
                             f"leave bins out")
        self.bins = BINS
        self.channels = channels
        self.num_classes = num_classes
        self.levels = nn.ModuleList(conv_bn_relu(in_channels, channels, 1) for _ in BINS)
        self.bottleneck = conv_bn_relu(in_channels + len(BINS) * channels, channels, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        self.hook_pooled_1 = HookPoint()    # B x C x 1 x 1
        self.hook_pooled_2 = HookPoint()    # B x C x 2 x 2
        self.hook_pooled_3 = HookPoint()    # B x C x 3 x 3
        self.hook_pooled_6 = HookPoint()    # B x C x 6 x 6
        self.hook_bottleneck = HookPoint()  # B x C x h x w (after BN and ReLU, before dropout)

    def pooled_hooks(self) -> list[HookPoint]:
        """The four level hooks in ``bins`` order."""
        return [self.hook_pooled_1, self.hook_pooled_2, self.hook_pooled_3, self.hook_pooled_6]

    def forward(self, feats: torch.Tensor) -> tuple[None, torch.Tensor]:
        h, w = feats.shape[-2:]
        ups = [feats]
        for b, level, hook in zip(self.bins, self.levels, self.pooled_hooks()):
            pooled = hook(level(F.adaptive_avg_pool2d(feats, b)))                     # (C channels on b x b bins)
            ups.append(F.interpolate(pooled, size=(h, w), mode="bilinear", align_corners=False))
        stacked = torch.cat(ups, 1)                                                  # B x Cf+4C x h x w
        fused = self.hook_bottleneck(self.bottleneck(stacked))                       # B x C x h x w
        main = self.classifier(self.dropout(fused))                                  # B x K x h x w
        return None, main
