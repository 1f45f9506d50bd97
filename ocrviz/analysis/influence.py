"""How much each region matters to each cell's prediction: ``region_influence``.

For cell p (predicted class c = argmax of its head logits) and region k, the
influence is ``logit_c(sim row) - logit_c(row without k)``, where "without k"
sets ``row[k] = 0`` and renormalises the rest to sum 1 (a row with no mass
left, K = 1 or float underflow, becomes uniform over the other regions).
Positive: the region supports the prediction; negative: it works against it.

After the sim map OCR's head is per pixel (context = row @ value, then the
1x1 convs f_up, conv_bn_dropout, cls_head (MMSeg: out_project, bottleneck, conv_seg); in eval mode BatchNorm is affine
and Dropout2d the identity), so all K edits of all cells run as one batch of
``cells x (K + 1)`` rows through the model's own modules, laid out as an
N x 1 "image" (the first row of each cell is the unedited one, so an edit
that changes nothing gives exactly 0).  The fuse conv's pixel half is
computed once per cell, not once per edit.

Example::

    logits, cache = ocrviz.run_with_cache(model.eval(), x)
    inf = region_influence(model, cache)                  # B x HW x K
    inf_some = region_influence(model, cache, cells=[(0, 3, 7), (0, 10, 2)])   # 2 x K
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .counterfactual import OCRParts, _check_eval, ocr_parts

MAX_ELEMENTS = 1 << 23  # rows x channels per chunk (bounded memory on HRNet-size maps)


def dropped_rows(sim: torch.Tensor) -> torch.Tensor:
    """N x K sim rows -> N x (K + 1) x K: the row itself, then the row without region k, renormalised."""
    n, k = sim.shape
    keep = 1.0 - torch.eye(k, dtype=sim.dtype, device=sim.device)         # K x K, zero on the diagonal
    rows = sim[:, None, :] * keep[None]                                     # N x K x K
    total = rows.sum(-1, keepdim=True)                                      # N x K x 1
    uniform = (keep / max(k - 1, 1))[None].expand_as(rows)                  # N x K x K
    rows = torch.where(total > 0, rows / total.clamp_min(torch.finfo(sim.dtype).tiny), uniform)
    return torch.cat([sim[:, None, :], rows], 1)                            # N x (K + 1) x K


def _fused_logits(parts: OCRParts, context: torch.Tensor, pixels: torch.Tensor, reps: int) -> torch.Tensor:
    """context (M*reps) x Ck, pixels M x C -> (M*reps) x K logits, through the model's modules."""
    ctx = context.T[None, :, :, None]                                       # 1 x Ck x (M*reps) x 1
    obj = parts.up(ctx)                                                     # 1 x C x (M*reps) x 1
    fuse = parts.fuse
    conv = fuse[0] if isinstance(fuse, nn.Sequential) and len(fuse) else None
    pix = pixels.T[None, :, :, None]                                        # 1 x C x M x 1
    if isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and conv.groups == 1:
        c_obj = obj.shape[1]
        w = conv.weight
        y = F.conv2d(obj, w[:, :c_obj])                                     # 1 x C' x (M*reps) x 1
        y_pix = F.conv2d(pix, w[:, c_obj:], conv.bias)                      # 1 x C' x M x 1
        y = y + y_pix.repeat_interleave(reps, dim=2)                        # 1 x C' x (M*reps) x 1
        aug = fuse[1:](y)
    else:
        aug = fuse(torch.cat([obj, pix.repeat_interleave(reps, dim=2)], 1))
    return parts.cls(aug)[0, :, :, 0].T                                     # (M*reps) x K


def _influence_rows(parts: OCRParts, sim: torch.Tensor, value: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """One image: sim N x K, value K x Ck, pixels N x C -> influence N x K."""
    n, k = sim.shape
    reps = k + 1
    width = max(value.shape[1], pixels.shape[1], k)
    step = max(1, MAX_ELEMENTS // (reps * width * 2))
    out = []
    for s in range(0, n, step):
        rows = dropped_rows(sim[s:s + step])                                # M x (K+1) x K
        m = rows.shape[0]
        context = torch.matmul(rows.reshape(m * reps, k), value)            # (M*(K+1)) x Ck
        logits = _fused_logits(parts, context, pixels[s:s + step], reps)    # (M*(K+1)) x K
        logits = logits.reshape(m, reps, -1)                                # M x (K+1) x K
        pred = logits[:, 0].argmax(-1)                                      # M
        at_pred = logits.gather(2, pred[:, None, None].expand(m, reps, 1))[..., 0]  # M x (K+1)
        out.append(at_pred[:, :1] - at_pred[:, 1:])                         # M x K
    return torch.cat(out, 0)                                                # N x K


@torch.no_grad()
def region_influence(model: nn.Module, cache: Any, cells: Iterable[tuple[int, int, int]] | None = None
                     ) -> torch.Tensor:
    """Drop of each cell's predicted-class logit when region k is removed from its sim row.

    Args:
        model: a supported OCR model in eval mode (see ``counterfactual.SUPPORTED``)
            whose layers after the sim map are all 1x1.
        cache: from ``ocrviz.run_with_cache(model, x)`` (needs ``sim_map``,
            ``value``, ``pixel_feats``).
        cells: None for every cell, or (b, row, col) triples in feature cells.

    Returns B x HW x K (cell index ``row * w + col``), or N x K for ``cells``;
    float, on the cache's device.  The predicted class is the argmax of the
    recomputed (unedited) head logits, equal to ``cache.head_logits``.
    """
    parts = ocr_parts(model)
    _check_eval(model)
    if not parts.per_pixel:
        raise ValueError(f"{type(model).__name__}: the layers after the sim map are not all 1x1 convs, so the "
                         f"head is not per pixel; use rerun_head (one edit per call) instead")
    sim, value, feats = cache.sim_map, cache.value, cache.pixel_feats       # B x HW x K, B x K x Ck, B x C x h x w
    b, c, h, w = feats.shape
    pixels = feats.reshape(b, c, h * w).permute(0, 2, 1)                    # B x HW x C
    if cells is None:
        return torch.stack([_influence_rows(parts, sim[i], value[i], pixels[i]) for i in range(b)])  # B x HW x K
    idx = torch.as_tensor([tuple(int(v) for v in t) for t in cells], dtype=torch.long).reshape(-1, 3)  # N x 3
    bad = (idx[:, 0] < 0) | (idx[:, 0] >= b) | (idx[:, 1] < 0) | (idx[:, 1] >= h) | (idx[:, 2] < 0) | (idx[:, 2] >= w)
    if bool(bad.any()):
        first = tuple(idx[bad][0].tolist())
        raise ValueError(f"cell {first} is outside the cache (batch {b}, feature map {h} x {w}); give "
                         f"(b, row, col) triples in feature cells (pixel // output_stride)")
    out = torch.empty(len(idx), sim.shape[2], dtype=sim.dtype, device=sim.device)  # N x K
    flat = idx[:, 1] * w + idx[:, 2]                                        # N
    for i in idx[:, 0].unique().tolist():
        sel = (idx[:, 0] == i).nonzero()[:, 0]
        p = flat[sel].to(sim.device)
        out[sel.to(sim.device)] = _influence_rows(parts, sim[i, p], value[i], pixels[i, p])
    return out
