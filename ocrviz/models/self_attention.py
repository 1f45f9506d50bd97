"""Non-local self-attention head: every pixel attends to every pixel.

The context module of the non-local network (Wang et al. 2018, "Non-local
Neural Networks", arXiv 1711.07971) and OCNet's base-OC block, in the
embedded-Gaussian form MMSegmentation's ``NLHead`` uses, at ToyCity size.  The block from ``pre``'s output to ``y`` is mmcv's
``NonLocal2d(C, reduction=C // Ck, use_scale=True, norm_cfg=BN,
mode="embedded_gaussian")`` with its ``g`` / ``theta`` / ``phi`` / ``conv_out``
named ``value`` / ``query`` / ``key`` / ``out`` (tests/models load one into the
other and compare)::

    pre       conv3x3 (Cf -> C) -> BN -> ReLU                      x
    query     conv1x1 (C -> Ck)              q = B x HW x Ck
    key       conv1x1 (C -> Ck)              k = B x Ck x HW
    value     conv1x1 (C -> Ck)              v = B x HW x Ck
    attention softmax_j(q_i . k_j / sqrt(Ck))   HW x HW, rows sum to 1
    context   attention @ v -> conv1x1 (Ck -> C) -> BN        (out)
    residual  y = x + out                                       (non-local's "+ x")
    fuse      conv3x3 (Cf + C -> C) -> BN -> ReLU on [features, y]
    -> Dropout2d -> classifier conv1x1 -> K

The HW x HW attention exists only inside ``forward`` (a 32 x 64 map gives
2048 x 2048 = 16 MiB per image; Cityscapes-size maps 4 GiB): no hook holds it.

What capture sees, and how a context producer reads pixel p's exact row:

* ``head.hook_query``  B x HW x Ck: q, one row per cell (row-major, i*w + j).
* ``head.hook_key``    B x Ck x HW: k.
* ``head.hook_value``  B x HW x Ck: v.
* ``head.hook_context`` B x Ck x h x w: ``attention @ v`` laid out as a map
  (before ``out``), the tensor to verify a recomputed row against.

  The row of pixel p is ``softmax(q[b, p] @ k[b] * head.scale)`` (``scale =
  1 / sqrt(Ck)``), HW weights summing to 1 with nothing off the grid; it is
  exact, and ``row @ v[b]`` equals ``hook_context[b, :, i, j]``.

Shapes: B batch, Cf backbone channels, C head channels, Ck key channels,
K classes, h x w feature map, HW = h * w.

Example::

    head = SelfAttentionHead(in_channels=128, num_classes=5, channels=64, key_channels=32)
    aux, main = head(torch.randn(2, 128, 32, 64))   # aux is None; main 2 x 5 x 32 x 64
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .hook_point import HookPoint


def conv_bn_relu(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class SelfAttentionHead(nn.Module):
    """Feature map -> ``(None, main logits)`` at feature resolution, through non-local attention.

    Args:
        in_channels: backbone channels (Cf).
        num_classes: K.
        channels: width C of the block (512 in MMSeg's NLHead; 64 here).
        key_channels: Ck of query, key and value (C / 2, as NonLocal2d's reduction=2).
        dropout: Dropout2d before the classifier (0.1, as MMSegmentation).

    Attributes: ``scale`` (1 / sqrt(Ck), the logit scale of the softmax);
    modules ``pre``, ``query``, ``key``, ``value``, ``out``, ``fuse``,
    ``dropout``, ``classifier``.
    """

    def __init__(self, in_channels: int, num_classes: int, channels: int = 64, key_channels: int = 32,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.channels = channels
        self.key_channels = key_channels
        self.num_classes = num_classes
        self.scale = 1.0 / math.sqrt(key_channels)
        self.pre = conv_bn_relu(in_channels, channels, 3)
        self.query = nn.Conv2d(channels, key_channels, 1)
        self.key = nn.Conv2d(channels, key_channels, 1)
        self.value = nn.Conv2d(channels, key_channels, 1)
        self.out = nn.Sequential(nn.Conv2d(key_channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.fuse = conv_bn_relu(in_channels + channels, channels, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        self.hook_query = HookPoint()    # B x HW x Ck
        self.hook_key = HookPoint()      # B x Ck x HW
        self.hook_value = HookPoint()    # B x HW x Ck
        self.hook_context = HookPoint()  # B x Ck x h x w (attention @ value, before out)

    def forward(self, feats: torch.Tensor) -> tuple[None, torch.Tensor]:
        b, _, h, w = feats.shape
        x = self.pre(feats)                                                          # B x C x h x w
        q = self.hook_query(self.query(x).flatten(2).transpose(1, 2))                # B x HW x Ck
        k = self.hook_key(self.key(x).flatten(2))                                    # B x Ck x HW
        v = self.hook_value(self.value(x).flatten(2).transpose(1, 2))                # B x HW x Ck
        attention = torch.softmax(torch.bmm(q, k) * self.scale, dim=-1)              # B x HW x HW
        context = torch.bmm(attention, v).transpose(1, 2).reshape(b, self.key_channels, h, w)  # B x Ck x h x w
        context = self.hook_context(context)                                         # B x Ck x h x w
        y = x + self.out(context)                                                    # B x C x h x w
        fused = self.fuse(torch.cat([feats, y], 1))                                  # B x C x h x w
        main = self.classifier(self.dropout(fused))                                  # B x K x h x w
        return None, main
