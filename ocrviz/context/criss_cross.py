"""Criss-cross attention (CCNet): each pixel attends to its row and its column, H + W - 1 cells.

Recognised: mmcv's ``CrissCrossAttention`` (pure PyTorch since mmcv 1.3.13;
MMSeg's CCHead calls the same module ``recurrence`` = 2 times).  For pixel
(h, w) the energies are ``q(h, w) . k(i, w)`` over its column (i != h: mmcv
puts -inf on i = h so the pixel itself is counted once) and ``q(h, w) . k(h, j)``
over its row; one softmax over the H + W energies;
``out = gamma * sum(attn * v) + x``.

Every call is its own site record (``<path>``, ``<path>.call1``, ...): each
pass's map is exact.  What two passes give together is not a single row of
the head's arithmetic (the second pass mixes the first pass's *outputs*,
residual and value projection included), so :func:`rollout_map` composes
them by attention rollout, A2 . A1, a stated convention.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..capture.cache import Cache
from ..capture.foreign import verify
from .sites import (CallCounter, Emit, HookSite, SiteRecord, class_names, join, publish, read_site, recorder, row_map,
                    sites_of, ocrviz_head_logits)
from .types import ContextMap, Site

KIND = "criss_cross"
CC_CLASSES = frozenset({"CrissCrossAttention"})
ROLLOUT = "two criss-cross passes composed by attention rollout (A2 . A1); residuals and value projections ignored"


def find_modules(model: nn.Module) -> list[HookSite]:
    """mmcv CrissCrossAttention modules (query_conv, key_conv, value_conv, gamma), module order."""
    return [HookSite(path, m, KIND, _attach, (join(path, "query"), join(path, "key")))
            for path, m in model.named_modules()
            if class_names(m) & CC_CLASSES
            and all(hasattr(m, a) for a in ("query_conv", "key_conv", "value_conv", "gamma"))]


def criss_cross_attention(query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """B x H x W x (H + W) weights: [..., :H] over the pixel's column, [..., H:] over its row."""
    b, c, h, w = query.shape
    energy_h = torch.einsum("bchw,bciw->bhwi", query, key)                 # B x H x W x H (column)
    diag = torch.eye(h, dtype=torch.bool, device=query.device)            # i == h
    energy_h = energy_h.masked_fill(diag[:, None, :], float("-inf"))       # H x 1 x H broadcast
    energy_w = torch.einsum("bchw,bchj->bhwj", query, key)                 # B x H x W x W (row)
    return F.softmax(torch.cat([energy_h, energy_w], dim=-1), dim=-1)      # B x H x W x (H + W)


def _apply(attn: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    h = value.shape[2]
    out = torch.einsum("bciw,bhwi->bchw", value, attn[..., :h])             # column part
    return out + torch.einsum("bchj,bhwj->bchw", value, attn[..., h:])     # row part, B x C x H x W


def _attach(site: HookSite, emit: Emit, detach: bool) -> list[RemovableHandle]:
    path, mod = site.path, site.module
    scratch: dict[str, list] = {}
    calls = CallCounter(path)
    handles = [getattr(mod, n).register_forward_hook(recorder(scratch, n))
               for n in ("query_conv", "key_conv", "value_conv")]
    handles.append(mod.gamma.register_forward_hook(recorder(scratch, "gamma", keep_input=True)))

    def post(m: nn.Module, args: tuple, output: torch.Tensor) -> None:
        s = {k: v[-1] for k, v in scratch.items()}
        scratch.clear()
        q, k, v = s["query_conv"], s["key_conv"], s["value_conv"]
        with torch.no_grad() if detach else torch.enable_grad():
            out = _apply(criss_cross_attention(q, k), v)
        verify(path, "criss-cross context (the input of gamma)", out, s["gamma_in"])
        verify(path, "output (gamma(context) + x)", s["gamma"] + args[0], output)
        name = calls.next()
        factors = {"query": q, "key": k}
        publish(emit, detach, name, KIND, tuple(q.shape[-2:]), factors, _read, {"path": path, "call": calls.count - 1})

    handles.append(mod.register_forward_hook(post))
    return handles


def pass_row(record: SiteRecord, batch: int, cell: tuple[int, int]) -> torch.Tensor:
    """Pixel ``cell``'s weights over the whole h x w grid (zero off its row and column), float64."""
    h, w = record.grid
    r, c = cell
    q = record.factors["query"][batch, :, r, c].double()                 # C
    k = record.factors["key"][batch].double()                            # C x H x W
    col = q @ k[:, :, c]                                                 # H energies over column c
    col[r] = float("-inf")                                               # the pixel counts once, in its row
    row = q @ k[:, r, :]                                                 # W energies over row r
    attn = F.softmax(torch.cat([col, row]), dim=0)                       # H + W
    out = torch.zeros(h, w, dtype=torch.float64)
    out[:, c] += attn[:h]
    out[r, :] += attn[h:]
    return out                                                           # h x w


def _read(record: SiteRecord, batch: int, cell: tuple[int, int]) -> ContextMap:
    """This pass's exact criss-cross row."""
    return row_map(pass_row(record, batch, cell), record.grid, cell, record, criss_cross_pass=record.meta["call"])


def rollout_map(records: list[SiteRecord], batch: int, cell: tuple[int, int]) -> ContextMap:
    """Compose consecutive passes (first to last) by rollout: M = A_n ... A_1, row ``cell``."""
    if not records or any(r.kind != KIND or r.grid != records[0].grid for r in records):
        raise ValueError("rollout_map takes criss-cross records of one module, on one grid, first pass first")
    h, w = records[0].grid
    row = pass_row(records[-1], batch, cell).reshape(-1)                 # HW
    for rec in reversed(records[:-1]):
        nxt = torch.zeros(h * w, dtype=torch.float64)
        for idx in torch.nonzero(row).flatten().tolist():                # H + W - 1 cells
            nxt += row[idx] * pass_row(rec, batch, divmod(idx, w)).reshape(-1)
        row = nxt
    return row_map(row, (h, w), cell, records[-1], exact=False, convention=ROLLOUT, passes=len(records))


# -- ocrviz's CCHead: one HookPoint set per pass ------------------------------------------------------
HOOK_ROLES = ("query", "key", "value", "context")   # <path>.hook_<role>, each B x C x h x w


def _hook_sites(cache: Cache) -> list[Site]:
    """ocrviz criss-cross passes (``models.criss_cross``: ``head.passes.<r>.hook_*``), forward order.

    A path qualifies with ``hook_query``, ``hook_key``, ``hook_value`` and ``hook_context``, all
    4-d maps on one h x w grid, and a parent whose ``passes`` holds it (the module's weights are
    shared; each pass's HookPoints are its own).
    """
    names = cache.names()
    out = []
    for name in names:
        path, _, leaf = name.rpartition(".")
        if leaf != "hook_query" or ".passes." not in f".{path}":
            continue
        hooks = {r: f"{path}.hook_{r}" for r in HOOK_ROLES}
        if not all(n in names for n in hooks.values()):
            continue
        shapes = [tuple(cache[n].shape) for n in hooks.values()]
        if all(len(sh) == 4 for sh in shapes) and len({sh[-2:] for sh in shapes}) == 1:
            out.append(Site(path=path, kind=KIND, hooks=hooks, grid=tuple(int(v) for v in shapes[0][-2:]),
                            order=max(names.index(n) for n in hooks.values())))
    return out


def _hook_record(cache: Cache, site: Site) -> SiteRecord:
    factors = {r: cache[n] for r, n in site.hooks.items()}
    return SiteRecord(site.path, KIND, site.grid, factors, _read_hook, {"path": site.path})


def _read_hook(record: SiteRecord, batch: int, cell: tuple[int, int]) -> ContextMap:
    """This pass's exact cross, checked: its weights applied to the pass's values give the pass's context."""
    weights = pass_row(record, batch, cell)                                # h x w
    v = record.factors["value"][batch].double()                            # C x h x w
    verify(f"{record.name} at cell {cell}", "criss-cross context of the clicked pixel (its cross @ value)",
           torch.einsum("chw,hw->c", v, weights), record.factors["context"][batch, :, cell[0], cell[1]])
    return row_map(weights, record.grid, cell, record, criss_cross_pass=int(record.name.rpartition(".")[2]))


def _is_hook_site(site: Site) -> bool:
    return set(site.hooks) == set(HOOK_ROLES)


# -- the producer interface (ocrviz.context) ------------------------------------------------------
def find_sites(cache: Cache) -> list[Site]:
    """This family's sites in ``cache``: hooked mmcv calls and ocrviz passes (forward order is the caller's)."""
    return sites_of(cache, KIND) + _hook_sites(cache)


def read(cache: Cache, site: Site, cell: tuple[int, int], batch_index: int = 0) -> ContextMap:
    """Pixel ``cell``'s exact map for one pass at ``site``, computed from the stored factors."""
    if _is_hook_site(site):
        return _hook_record(cache, site).map(batch_index, cell)
    return read_site(cache, site, cell, batch_index)


def masses(cache: Cache, site: Site, frac: np.ndarray, batch_index: int = 0) -> np.ndarray:
    """HW x O: every cell's exact cross's mass on each of the O cell maps ``frac`` (O x h x w).

    ocrviz passes: all crosses at once (h x w x (h + w) weights), checked against the pass's context
    for every cell; hooked mmcv calls read each cell.
    """
    f = torch.from_numpy(np.asarray(frac, np.float64))                        # O x h x w
    h, w = site.grid
    if not _is_hook_site(site):
        return np.stack([read_site(cache, site, (q // w, q % w), batch_index).weights.ravel()
                         for q in range(h * w)]) @ f.reshape(len(f), -1).T.numpy()
    q, k, v = (cache[site.hooks[r]][batch_index : batch_index + 1].double() for r in ("query", "key", "value"))
    attn = criss_cross_attention(q, k)                                        # 1 x h x w x (h + w)
    verify(f"{site.path} (every cell)", "criss-cross context (crosses @ value)", _apply(attn, v),
           cache[site.hooks["context"]][batch_index : batch_index + 1].double())
    col = torch.einsum("hwi,oiw->hwo", attn[0, ..., :h], f)                  # mass from each cell's column
    row = torch.einsum("hwj,ohj->hwo", attn[0, ..., h:], f)                  # and from its row
    return (col + row).reshape(h * w, -1).numpy()                             # HW x O


def rollout(cache: Cache, cell: tuple[int, int], batch_index: int = 0) -> ContextMap:
    """Every criss-cross pass in ``cache`` (forward order, one grid) composed by rollout at ``cell``.

    Not exact: the convention is ``ROLLOUT`` (A_n ... A_1, residuals and value projections
    ignored), so the map reaches every cell after two passes, as CCNet's paper argues.
    """
    from . import find_sites as all_sites              # the package's forward-order sort

    sites = [s for p, s in all_sites(cache) if s.kind == KIND]
    if not sites or len({s.grid for s in sites}) != 1:
        raise ValueError(f"rollout needs criss-cross passes on one grid; this cache has "
                         f"{[(s.path, s.grid) for s in sites] or 'none'}")
    records = [_hook_record(cache, s) if _is_hook_site(s) else
               next(r for r in cache.context_sites if r.name == s.path and r.kind == KIND) for s in sites]
    return rollout_map(records, batch_index, cell)


def head_logits(cache: Cache, site: Site, batch_index: int = 0) -> torch.Tensor | None:
    """K x h x w main logits for ocrviz heads (``sites.ocrviz_head_logits``); None for hooked foreign trees."""
    return ocrviz_head_logits(cache, batch_index) if _is_hook_site(site) else None
