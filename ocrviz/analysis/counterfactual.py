"""Counterfactual re-runs of OCR's head from a cache: ``rerun_head``.

The head is re-run with the model's OWN modules from the edited stage on:

* ``region_weights`` (B x K x h x w, each map sums to 1 over pixels) ->
  proxies = weights @ pixel_feats, key = f_object(proxies),
  value = f_down(proxies), sim_map = softmax_K(Ck^-0.5 * query @ key), then
  as below;
* ``sim_map`` (B x HW x K, rows sum to 1) -> context = sim_map @ value,
  f_up, ``conv_bn_dropout(cat([object_context, pixel_feats]))``, ``cls_head``.

Both at once is a forward in which both HookPoints were replaced (the given
sim map wins over the one the new regions would give; the new regions still
change the values).  Neither: the head logits recomputed from the cached sim
map, equal to ``cache.head_logits``.

Supported trees (``SUPPORTED``, found by ``ocr_parts.ocr_parts``): ocrviz's OCR
models (``create_model("ocrnet")``, ``load_model("toycity-ocr")``: the head at
``model.head``), ``HRNetW48OCR`` (the head at top level), official HRNet-OCR and
openseg.pytorch trees, and MMSeg's ``OCRHead`` (``key_project`` /
``value_project`` / ``out_project`` / ``bottleneck``, ``conv_seg``), the last
three captured with foreign capture.  Not supported: blocks with ``scale != 1``
or background context, and non-OCR models (ASPP, FCN).

Example::

    logits, cache = ocrviz.run_with_cache(model.eval(), x)
    uniform = torch.full_like(cache.sim_map, 1 / model.num_classes)
    rerun_head(model, cache, sim_map=uniform)        # B x K x h x w
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .ocr_parts import SUPPORTED, OCRParts, ocr_parts  # noqa: F401  (re-exported: the analyses import them here)

SUM_TOL = 1e-3  # allowed deviation of a row / map sum from 1


def _check_eval(model: nn.Module) -> None:
    if model.training:
        raise ValueError("the model is in training mode: Dropout2d is random and BatchNorm uses batch statistics, "
                         "so a re-run would not reproduce the forward; call model.eval() (and capture again)")


def _as_tensor(x: Any, like: torch.Tensor, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor or numpy array, got {type(x).__name__}")
    return x.to(device=like.device, dtype=like.dtype)


def check_distribution(x: torch.Tensor, dims: tuple[int, ...], name: str, shape: tuple[int, ...],
                       fix: str) -> None:
    """Raise ValueError unless ``x`` has ``shape``, is finite, >= 0 and sums to 1 over ``dims``."""
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(x.shape)}; this cache needs {tuple(shape)}. {fix}")
    if not bool(torch.isfinite(x).all()) or float(x.min()) < -1e-6:
        raise ValueError(f"{name} holds negative or non-finite values (min {float(x.min()):.3g}); "
                         f"it must be a distribution. {fix}")
    sums = x.sum(dims)
    worst = int((sums - 1).abs().flatten().argmax())
    err = float((sums - 1).abs().flatten()[worst])
    if err > SUM_TOL:
        where = tuple(int(i) for i in np.unravel_index(worst, tuple(sums.shape)))
        raise ValueError(f"{name} must sum to 1 over axes {dims}; at index {where} it sums to "
                         f"{float(sums.flatten()[worst]):.6g}. {fix}")


def value_and_sim(parts: OCRParts, cache: Any, region_weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Proxies -> key, value and sim map from edited region weights: (B x K x Ck, B x HW x K)."""
    pixels = cache.pixel_feats                                             # B x C x h x w
    b, c, h, w = pixels.shape
    k = region_weights.shape[1]
    flat = pixels.reshape(b, c, h * w).permute(0, 2, 1)                    # B x HW x C
    proxies = torch.matmul(region_weights.reshape(b, k, h * w), flat)      # B x K x C
    proxies = proxies.permute(0, 2, 1).unsqueeze(3)                        # B x C x K x 1 (official layout)
    key = parts.key_proj(proxies).reshape(b, parts.key_channels, -1)                     # B x Ck x K
    value = parts.value_proj(proxies).reshape(b, parts.key_channels, -1).permute(0, 2, 1)  # B x K x Ck
    query = cache.query                                                    # B x HW x Ck
    logits = torch.matmul(query, key)                                      # B x HW x K
    sim = F.softmax(logits if parts.sim_scale is None else parts.sim_scale * logits, dim=-1)  # B x HW x K
    return value, sim


def tail(parts: OCRParts, context: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Context (B x Ck x h x w) + pixel features (B x C x h x w) -> head logits B x K x h x w.

    f_up (MMSeg: out_project), the fuse on ``cat([object_context, pixels])`` and the classifier; with
    a per-pixel head the "grid" may be any N x 1 list of cells.
    """
    obj = parts.up(context)                                                # B x C x h x w
    return parts.cls(parts.fuse(torch.cat([obj, pixels], 1)))              # B x K x h x w


@torch.no_grad()
def rerun_head(model: nn.Module, cache: Any, *, sim_map: Any = None, region_weights: Any = None) -> torch.Tensor:
    """Main head logits B x K x h x w (feature resolution) recomputed from ``cache`` with edits.

    Args:
        model: a supported OCR model (see ``SUPPORTED``) in eval mode, the
            one that produced ``cache``.
        cache: from ``ocrviz.run_with_cache(model, x)``; needs ``pixel_feats``,
            ``value`` and ``sim_map`` (and ``query`` for a ``region_weights`` edit).
        sim_map: B x HW x K, rows >= 0 summing to 1: replaces the similarity map.
        region_weights: B x K x h x w, each map >= 0 summing to 1 over h x w:
            replaces the spatial softmax of the soft regions (proxies, key,
            value and, unless ``sim_map`` is given, the sim map follow).

    Returns the same as a full forward in which forward hooks on
    ``hook_region_weights`` / ``hook_sim_map`` returned these tensors (``hook_head_logits``).
    Runs under ``torch.no_grad()`` (the cache is detached too).

    Example::

        onehot = F.one_hot(cache.soft_regions.argmax(1).flatten(1), K).float()   # B x HW x K
        rerun_head(model, cache, sim_map=onehot).argmax(1)                       # B x h x w
    """
    parts = ocr_parts(model)
    _check_eval(model)
    pixels = cache.pixel_feats                                             # B x C x h x w
    b, _, h, w = pixels.shape
    value = cache.value                                                    # B x K x Ck
    k = value.shape[1]
    if region_weights is not None:
        rw = _as_tensor(region_weights, pixels, "region_weights")
        check_distribution(rw, (2, 3), "region_weights", (b, k, h, w),
                           "Give B x K x h x w maps, each summing to 1 over pixels: rw / rw.sum((2, 3), keepdim=True)")
        value, sim = value_and_sim(parts, cache, rw)                       # B x K x Ck, B x HW x K
    else:
        sim = cache.sim_map                                                # B x HW x K
    if sim_map is not None:
        sim = _as_tensor(sim_map, pixels, "sim_map")
        check_distribution(sim, (2,), "sim_map", (b, h * w, k),
                           "Give B x HW x K rows summing to 1 (sim / sim.sum(-1, keepdim=True)); from "
                           "B x K x h x w maps use m.flatten(2).transpose(1, 2)")
    context = torch.matmul(sim, value)                                     # B x HW x Ck
    context = context.permute(0, 2, 1).reshape(b, -1, h, w)                # B x Ck x h x w
    return tail(parts, context, pixels)                                    # B x K x h x w
