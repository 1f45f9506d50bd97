"""DANet's dual attention head: position attention (PAM) beside channel attention (CAM).

Dual Attention Network (Fu et al. 2019, arXiv 1809.02983), as
MMSegmentation's ``DAHead`` builds it, at ToyCity size::

    PAM branch   conv3x3 (Cf -> C) -> BN -> ReLU                         xp
                 q = conv1x1 (C -> Ck), k = conv1x1 (C -> Ck), v = conv1x1 (C -> C)
                 attention softmax_j(q_i . k_j)          HW x HW (no 1/sqrt(Ck) scale, as DANet)
                 pam = gamma_p * (attention @ v) + xp    gamma_p starts at 0
                 conv3x3 (C -> C) -> BN -> ReLU                          pam_out
    CAM branch   conv3x3 (Cf -> C) -> BN -> ReLU                         xc
                 energy = xc . xc^T over pixels          C x C
                 attention = softmax(max(energy) - energy)  (DANet's "max minus" trick)
                 cam = gamma_c * (attention @ xc) + xc
                 conv3x3 (C -> C) -> BN -> ReLU                          cam_out
    sum          pam_out + cam_out -> Dropout2d -> classifier conv1x1 -> K

Training (:meth:`DAHead.branch_logits`) also supervises each branch alone
through its own classifier (``pam_classifier``, ``cam_classifier``), as
MMSegmentation's ``DAHead`` does (three cross-entropies, weight 1 each); the
forward returns the fused prediction only.

What capture sees, and how a context producer reads pixel p's exact PAM row:

* ``head.hook_pam_query``  B x HW x Ck: q (row-major cells, i*w + j).
* ``head.hook_pam_key``    B x Ck x HW: k.
* ``head.hook_pam_value``  B x HW x C:  v.
* ``head.hook_pam_context`` B x C x h x w: ``attention @ v`` as a map (before
  gamma), to verify a recomputed row against.

  The row of pixel p is ``softmax(q[b, p] @ k[b])`` (no scale), HW weights
  summing to 1, nothing off the grid: exact, and ``row @ v[b]`` equals
  ``hook_pam_context[b, :, i, j]``.  The PAM output adds ``gamma_p *`` that
  context to the pixel's own ``xp`` (``head.pam_gamma``, a learned scalar).

* ``head.hook_cam_attention`` B x C x C: the channel attention.  CAM mixes
  channels, never pixels: pixel p's CAM output reads only pixel p's own
  features, so it has no spatial context map (a producer should say so).

Shapes: B batch, Cf backbone channels, C head channels, Ck key channels
(C / 8, as DANet), K classes, h x w feature map, HW = h * w.

Example::

    head = DAHead(in_channels=128, num_classes=5, channels=64)
    aux, main = head(torch.randn(2, 128, 32, 64))   # aux is None; main 2 x 5 x 32 x 64
"""
from __future__ import annotations

import torch
from torch import nn

from .hook_point import HookPoint


def conv_bn_relu(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class DAHead(nn.Module):
    """Feature map -> ``(None, main logits)`` at feature resolution, through PAM + CAM.

    Args:
        in_channels: backbone channels (Cf).
        num_classes: K.
        channels: width C of both branches (512 in MMSeg; 64 here).
        key_channels: Ck of the PAM query and key (C / 8 as DANet when None).
        dropout: Dropout2d before the classifiers (0.1, as MMSegmentation).

    Attributes: ``pam_gamma``, ``cam_gamma`` (learned scalars, initialised to 0
    as in DANet); modules ``pam_in``, ``pam_query``, ``pam_key``, ``pam_value``,
    ``pam_out``, ``cam_in``, ``cam_out``, ``dropout``, ``classifier``,
    ``pam_classifier``, ``cam_classifier``.
    """

    def __init__(self, in_channels: int, num_classes: int, channels: int = 64, key_channels: int | None = None,
                 dropout: float = 0.1) -> None:
        super().__init__()
        key_channels = max(1, channels // 8) if key_channels is None else key_channels
        self.channels = channels
        self.key_channels = key_channels
        self.num_classes = num_classes
        self.pam_in = conv_bn_relu(in_channels, channels, 3)
        self.pam_query = nn.Conv2d(channels, key_channels, 1)
        self.pam_key = nn.Conv2d(channels, key_channels, 1)
        self.pam_value = nn.Conv2d(channels, channels, 1)
        self.pam_gamma = nn.Parameter(torch.zeros(1))
        self.pam_out = conv_bn_relu(channels, channels, 3)
        self.cam_in = conv_bn_relu(in_channels, channels, 3)
        self.cam_gamma = nn.Parameter(torch.zeros(1))
        self.cam_out = conv_bn_relu(channels, channels, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        self.pam_classifier = nn.Conv2d(channels, num_classes, 1)
        self.cam_classifier = nn.Conv2d(channels, num_classes, 1)
        self.hook_pam_query = HookPoint()      # B x HW x Ck
        self.hook_pam_key = HookPoint()        # B x Ck x HW
        self.hook_pam_value = HookPoint()      # B x HW x C
        self.hook_pam_context = HookPoint()    # B x C x h x w (attention @ value, before gamma)
        self.hook_cam_attention = HookPoint()  # B x C x C

    def position_attention(self, feats: torch.Tensor) -> torch.Tensor:
        """PAM branch: Cf-channel features -> B x C x h x w (after ``pam_out``)."""
        b, _, h, w = feats.shape
        x = self.pam_in(feats)                                                       # B x C x h x w
        q = self.hook_pam_query(self.pam_query(x).flatten(2).transpose(1, 2))        # B x HW x Ck
        k = self.hook_pam_key(self.pam_key(x).flatten(2))                            # B x Ck x HW
        v = self.hook_pam_value(self.pam_value(x).flatten(2).transpose(1, 2))        # B x HW x C
        attention = torch.softmax(torch.bmm(q, k), dim=-1)                           # B x HW x HW
        context = torch.bmm(attention, v).transpose(1, 2).reshape(b, self.channels, h, w)  # B x C x h x w
        context = self.hook_pam_context(context)                                     # B x C x h x w
        return self.pam_out(self.pam_gamma * context + x)                            # B x C x h x w

    def channel_attention(self, feats: torch.Tensor) -> torch.Tensor:
        """CAM branch: Cf-channel features -> B x C x h x w (after ``cam_out``)."""
        b, _, h, w = feats.shape
        x = self.cam_in(feats)                                                       # B x C x h x w
        flat = x.flatten(2)                                                          # B x C x HW
        energy = torch.bmm(flat, flat.transpose(1, 2))                               # B x C x C
        energy = energy.max(dim=-1, keepdim=True).values - energy                    # B x C x C
        attention = self.hook_cam_attention(torch.softmax(energy, dim=-1))           # B x C x C
        mixed = torch.bmm(attention, flat).reshape(b, self.channels, h, w)           # B x C x h x w
        return self.cam_out(self.cam_gamma * mixed + x)                              # B x C x h x w

    def branch_logits(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(fused, PAM-only, CAM-only) logits, each B x K x h x w: what training supervises."""
        pam, cam = self.position_attention(feats), self.channel_attention(feats)
        main = self.classifier(self.dropout(pam + cam))                              # B x K x h x w
        return main, self.pam_classifier(self.dropout(pam)), self.cam_classifier(self.dropout(cam))

    def forward(self, feats: torch.Tensor) -> tuple[None, torch.Tensor]:
        pam, cam = self.position_attention(feats), self.channel_attention(feats)
        main = self.classifier(self.dropout(pam + cam))                              # B x K x h x w
        return None, main
