"""Expectation-maximisation attention (EMANet): K bases re-estimated from the image, pixels rebuilt from them.

Recognised: MMSeg's ``EMAModule`` (EMAHead).  Under ``no_grad`` it runs
``num_stages`` EM steps from its ``bases`` buffer; with the last stage's
responsibilities A (HW x K, softmax over bases), the previous ones normalised
over pixels An (each column sums to 1) and the final bases
b_k = (feats @ An_k) / z_k (z_k their L2 norms):

    recon[:, n] = sum_k A[n, k] b_k = sum_m feats[:, m] * sum_k A[n, k] An[m, k] / z_k

an exact linear identity over the input cells.  Its weights sum to
s_n = sum_k A[n, k] / z_k, not 1, so the map is that row divided by s_n
(``extra["scale_to_head"] = s_n``), and it factors as sources = the K bases,
source_weights = A[n, k] / z_k / s_n, spread of base k = An[:, k].

The hooks copy the bases buffer before the call (training updates it after),
re-run EM, and check the identity against the module's output inside the
hook: EMAHead applies ``relu(..., inplace=True)`` to that output right after.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..capture.cache import Cache
from ..capture.foreign import verify
from .sites import (CallCounter, Emit, HookSite, SiteRecord, class_names, join, publish, read_site, row_map, sites_of)
from .types import ContextMap, Site

KIND = "em"
EMA_CLASSES = frozenset({"EMAModule"})


def find_modules(model: nn.Module) -> list[HookSite]:
    """MMSeg EMAModule modules, module order."""
    return [HookSite(path, m, KIND, _attach, (join(path, "responsibilities"), join(path, "spread")))
            for path, m in model.named_modules()
            if class_names(m) & EMA_CLASSES and all(hasattr(m, a) for a in ("bases", "num_stages"))]


def rerun_em(feats: torch.Tensor, bases: torch.Tensor, num_stages: int) -> tuple[torch.Tensor, ...]:
    """MMSeg's EM steps: (A B x HW x K, An B x HW x K, z B x K) for feats B x C x HW, bases B x C x K."""
    for _ in range(num_stages):
        attention = F.softmax(torch.einsum("bcn,bck->bnk", feats, bases), dim=2)   # B x HW x K
        normed = F.normalize(attention, dim=1, p=1)                                 # over pixels
        raw = torch.einsum("bcn,bnk->bck", feats, normed)                           # B x C x K
        bases = F.normalize(raw, dim=1, p=2)
    z = raw.norm(p=2, dim=1).clamp_min(1e-12)                                       # F.normalize's eps
    return attention, normed, z


def _attach(site: HookSite, emit: Emit, detach: bool) -> list[RemovableHandle]:
    path, mod = site.path, site.module
    start: dict[str, torch.Tensor] = {}
    calls = CallCounter(path)

    def pre(m: nn.Module, args: tuple) -> None:
        start["bases"] = m.bases.detach().clone()          # training updates the buffer after the call

    def post(m: nn.Module, args: tuple, output: torch.Tensor) -> None:
        feats = args[0]
        b, c, h, w = feats.shape
        flat = feats.detach().reshape(b, c, h * w)                                  # B x C x HW
        with torch.no_grad():
            attention, normed, z = rerun_em(flat, start.pop("bases").repeat(b, 1, 1), m.num_stages)
            source = attention / z[:, None, :]                                      # B x HW x K
            recon = torch.einsum("bcm,bmk,bnk->bcn", flat, normed, source)          # the linear identity
        verify(path, "reconstruction (sum over cells of feats x the EM weights)", recon.reshape(b, c, h, w), output)
        name = calls.next()
        factors = {"responsibilities": source, "spread": normed}
        publish(emit, detach, name, KIND, (h, w), factors, _read, {"num_bases": attention.shape[2]})

    return [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]


def _read(record: SiteRecord, batch: int, cell: tuple[int, int]) -> ContextMap:
    """Exact linear weights of the reconstruction over the input cells, divided by their sum."""
    h, w = record.grid
    row = record.factors["responsibilities"][batch, cell[0] * w + cell[1]].double()   # K: A / z
    total = float(row.sum())
    shares = row / total
    weights = record.factors["spread"][batch].double() @ shares                        # HW
    names = tuple(f"base {k}" for k in range(row.numel()))
    return row_map(weights, (h, w), cell, record, sources=names, source_weights=shares.numpy(),
                   scale_to_head=total)


# -- the producer interface (ocrviz.context) ------------------------------------------------------
def find_sites(cache: Cache) -> list[Site]:
    """This family's captured records in ``cache``, as sites (forward order is the caller's)."""
    return sites_of(cache, KIND)


def read(cache: Cache, site: Site, cell: tuple[int, int], batch_index: int = 0) -> ContextMap:
    """Pixel ``cell``'s map at ``site``, computed from the stored factors."""
    return read_site(cache, site, cell, batch_index)
