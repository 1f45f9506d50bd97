"""CCNet's criss-cross attention head: each pixel attends to its row and column, twice.

Criss-Cross Network (Huang et al. 2019, arXiv 1811.11721), as
MMSegmentation's ``CCHead`` builds it (mmcv's ``CrissCrossAttention``, written
here in plain torch), at ToyCity size::

    pre       conv3x3 (Cf -> C) -> BN -> ReLU                        x
    2 passes of the SAME criss-cross module (recurrence R = 2, shared weights):
        q = conv1x1 (C -> Ck), k = conv1x1 (C -> Ck), v = conv1x1 (C -> C)
        energy of pixel (i, j): q(i,j) . k(i',j) over its column i' != i (h - 1
            cells; the pixel itself is masked with -inf there) and
            q(i,j) . k(i,j') over its row j' (w cells, itself included)
        attention = softmax over those h + w energies (the -inf one gets 0)
        x <- gamma * (column part @ v + row part @ v) + x      (gamma starts at 0)
    post      conv3x3 (C -> C) -> BN -> ReLU
    fuse      conv3x3 (Cf + C -> C) -> BN -> ReLU on [features, post]
    -> Dropout2d -> classifier conv1x1 -> K

After two passes every pixel has (indirectly) reached every other one: pass 1
brings (i', j) into (i, j') 's row, pass 2 reads that row.

The module runs twice, so its hooks would fire twice per forward, which
capture refuses; each pass therefore has its own HookPoints in
``head.passes[r]`` (r = 0, 1), while the weights live once in ``head.cca``.

What capture sees, for pass r (``head.passes.<r>.hook_*``):

* ``hook_query``  B x Ck x h x w, ``hook_key`` B x Ck x h x w,
  ``hook_value`` B x C x h x w: q, k, v of that pass (small: no h x w x (h+w)
  tensor is kept).
* ``hook_context`` B x C x h x w: the attention-weighted sum of values
  (before gamma and the residual), to verify a recomputed row against.

  Pixel p = (i, j)'s exact weights for pass r: energies
  ``col[i'] = q[:, i, j] . k[:, i', j]`` for i' != i and
  ``row[j'] = q[:, i, j] . k[:, i, j']`` for every j', one softmax over the
  h - 1 + w of them (no scale); they sum to 1 over the cells of the cross,
  nothing off the grid, with the pixel itself counted once (from the row).
  ``sum_i' col[i'] v[:, i', j] + sum_j' row[j'] v[:, i, j']`` equals
  ``hook_context[b, :, i, j]``.  The pass's output is
  ``head.cca.gamma * context + x``.  Across the two passes, "where did p's
  context come from" needs a composition convention (e.g. attention rollout
  of pass 2's cross through pass 1's crosses, with or without the residual),
  which a producer must state.

Shapes: B batch, Cf backbone channels, C head channels, Ck key channels
(C / 8, as CCNet), K classes, h x w feature map.

Example::

    head = CCHead(in_channels=128, num_classes=5, channels=64)
    aux, main = head(torch.randn(2, 128, 32, 64))   # aux is None; main 2 x 5 x 32 x 64
"""
from __future__ import annotations

import torch
from torch import nn

from .hook_point import HookPoint

RECURRENCE = 2


def conv_bn_relu(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class PassHooks(nn.Module):
    """The HookPoints of one criss-cross pass (no parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.hook_query = HookPoint()    # B x Ck x h x w
        self.hook_key = HookPoint()      # B x Ck x h x w
        self.hook_value = HookPoint()    # B x C x h x w
        self.hook_context = HookPoint()  # B x C x h x w (attention @ value, before gamma)


class CrissCrossAttention(nn.Module):
    """One criss-cross pass: B x C x h x w -> B x C x h x w (the same shape, residual inside)."""

    def __init__(self, channels: int, key_channels: int) -> None:
        super().__init__()
        self.query = nn.Conv2d(channels, key_channels, 1)
        self.key = nn.Conv2d(channels, key_channels, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, hooks: PassHooks) -> torch.Tensor:
        h = x.shape[2]
        q = hooks.hook_query(self.query(x))                                          # B x Ck x h x w
        k = hooks.hook_key(self.key(x))                                              # B x Ck x h x w
        v = hooks.hook_value(self.value(x))                                          # B x C x h x w
        self_mask = torch.diag(torch.full((h,), float("-inf"), device=x.device, dtype=x.dtype))  # h x h
        energy_col = torch.einsum("bcij,bckj->bijk", q, k) + self_mask[:, None, :]   # B x h x w x h
        energy_row = torch.einsum("bcij,bcik->bijk", q, k)                           # B x h x w x w
        attention = torch.softmax(torch.cat([energy_col, energy_row], -1), dim=-1)   # B x h x w x h+w
        from_col = torch.einsum("bijk,bckj->bcij", attention[..., :h], v)            # B x C x h x w
        from_row = torch.einsum("bijk,bcik->bcij", attention[..., h:], v)            # B x C x h x w
        context = hooks.hook_context(from_col + from_row)                            # B x C x h x w
        return self.gamma * context + x                                              # B x C x h x w


class CCHead(nn.Module):
    """Feature map -> ``(None, main logits)`` at feature resolution, through 2 criss-cross passes.

    Args:
        in_channels: backbone channels (Cf).
        num_classes: K.
        channels: width C (512 in MMSeg; 64 here).
        key_channels: Ck of query and key (C / 8 as CCNet when None).
        dropout: Dropout2d before the classifier (0.1, as MMSegmentation).

    Attributes: ``recurrence`` (2); modules ``pre``, ``cca`` (the shared
    criss-cross weights, ``cca.gamma`` its residual scale), ``passes`` (one
    :class:`PassHooks` per pass), ``post``, ``fuse``, ``dropout``, ``classifier``.
    """

    def __init__(self, in_channels: int, num_classes: int, channels: int = 64, key_channels: int | None = None,
                 dropout: float = 0.1) -> None:
        super().__init__()
        key_channels = max(1, channels // 8) if key_channels is None else key_channels
        self.channels = channels
        self.key_channels = key_channels
        self.num_classes = num_classes
        self.recurrence = RECURRENCE
        self.pre = conv_bn_relu(in_channels, channels, 3)
        self.cca = CrissCrossAttention(channels, key_channels)
        self.passes = nn.ModuleList(PassHooks() for _ in range(RECURRENCE))
        self.post = conv_bn_relu(channels, channels, 3)
        self.fuse = conv_bn_relu(in_channels + channels, channels, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, feats: torch.Tensor) -> tuple[None, torch.Tensor]:
        x = self.pre(feats)                                                          # B x C x h x w
        for hooks in self.passes:
            x = self.cca(x, hooks)                                                   # B x C x h x w
        x = self.post(x)                                                             # B x C x h x w
        fused = self.fuse(torch.cat([feats, x], 1))                                  # B x C x h x w
        main = self.classifier(self.dropout(fused))                                  # B x K x h x w
        return None, main
