"""ASPP's context map: where each branch's taps land, weighted by the branch's share. A convention.

A dilated 3x3 branch reads nine fixed cells (``analysis/aspp_taps.py``), the
1x1 branch the cell itself, the image-pooling branch every cell equally.  The
head mixes them non-linearly (BN, ReLU after the projection), so "how much of
p's context comes from cell q" has no exact answer; we state one:
each branch gets its share of p's projection, ``||W_b b_b(p)|| / sum_j
||W_j b_j(p)||`` (``aspp_branch_shares``; the branch outputs' own norms when
the projection weight is unknown), spread as 1/9 per dilated tap, all on the
cell for 1x1, evenly over the grid for pooling.  Taps on the zero padding
carry their weight off the grid (``off_grid``).  This is where ASPP's taps
land, not a gradient (the gradient ERF is ``context/erf.py``).

A site is an ASPP head whose HookPoints ``<path>.hook_branch0..n`` and
``<path>.hook_pool`` were captured (ocrviz's ``ASPPHead``); its rates and
projection weight are read from the captured model (``cache.module(path)``).

Example::

    logits, cache = ocrviz.run_with_cache(aspp_model, x)
    m = read(cache, find_sites(cache)[0], (3, 5))     # m.convention says the above in one line
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..analysis.aspp_taps import aspp_branch_shares, aspp_taps
from ..capture.cache import Cache
from .types import ContextMap, Site

KIND = "aspp"
CONVENTION = ("ASPP taps x branch shares: each branch weighted by its share of the projection "
              "||W_b b_b(p)|| / sum ||W_j b_j(p)||, spread 1/9 per dilated tap, the 1x1 on the cell, "
              "pooling evenly; taps on the zero padding are off-grid")
CONVENTION_NORMS = CONVENTION.replace("its share of the projection ||W_b b_b(p)|| / sum ||W_j b_j(p)||",
                                      "its output's norm ||b_b(p)|| / sum ||b_j(p)|| (projection weight unknown)")


# -- the arithmetic (numpy; shared by every consumer) --------------------------------------------
def branch_names(rates: Sequence[int]) -> tuple[str, ...]:
    return ("1x1", *(f"rate {int(r)}" for r in rates), "image pool")


def tap_weights(row: int, col: int, shares_row: Sequence[float], rates: Sequence[int],
                feat_hw: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Cell (row, col)'s tap map, h x w, and the weight on the padding: ``map.sum() + off_grid == 1``."""
    h, w = feat_hw
    m, off_grid = np.zeros((h, w)), 0.0
    shares = np.asarray(shares_row, np.float64)              # float32 shares would round each 1/9 in float32
    for branch, share in zip(aspp_taps(row, col, rates, 1, feat_hw, feat_hw), shares):
        if branch.kind == "pool":
            m += share / (h * w)
            continue
        for tap in branch.taps:
            if tap.inside:
                m[tap.cell] += share / len(branch.taps)
            else:
                off_grid += share / len(branch.taps)
    return m, off_grid


def tap_fractions(frac: np.ndarray, rates: Sequence[int]) -> np.ndarray:
    """O x (len(rates) + 2) x h x w: per branch, the share of its taps at each cell that land on cell map o.

    ``frac`` O x h x w (e.g. the fraction of each cell covered by object o); the
    vectorised form of :func:`tap_weights` (padding reads zero)."""
    frac_t = torch.from_numpy(np.asarray(frac, np.float64))[:, None]             # O x 1 x h x w
    per_branch = [frac_t]                                                         # 1x1: the cell itself
    for r in rates:                                                               # 9 taps, zero padding
        kernel = torch.full((1, 1, 3, 3), 1.0 / 9, dtype=torch.float64)
        per_branch.append(F.conv2d(frac_t, kernel, padding=int(r), dilation=int(r)))
    per_branch.append(frac_t.mean(dim=(2, 3), keepdim=True).expand_as(frac_t))   # pool: all cells
    return torch.cat(per_branch, 1).numpy()                                       # O x nb x h x w


def mass_on(shares: np.ndarray, rates: Sequence[int], frac: np.ndarray) -> np.ndarray:
    """HW x O: every cell's tap-map mass on each cell map o (``shares`` HW x nb, ``frac`` O x h x w)."""
    o, h, w = np.asarray(frac).shape
    taps = tap_fractions(frac, rates).reshape(o, len(rates) + 2, h * w)           # O x nb x HW
    return np.einsum("pb,obp->po", np.asarray(shares, np.float64), taps)          # HW x O


def from_arrays(shares_row: Sequence[float], rates: Sequence[int], cell: tuple[int, int],
                feat_hw: tuple[int, int], *, site: str = "", convention: str = CONVENTION) -> ContextMap:
    """The ContextMap of one cell from its branch shares (len(rates) + 2) and the rates."""
    row, col = (int(v) for v in cell)
    m, off = tap_weights(row, col, shares_row, rates, feat_hw)
    return ContextMap(weights=m, off_grid=float(off), cell=(row, col), exact=False, convention=convention,
                      site=site, kind=KIND, sources=branch_names(rates),
                      source_weights=np.asarray(shares_row, np.float64), extra={"rates": tuple(rates)})


# -- the producer contract ------------------------------------------------------------------------
def find_sites(cache: Cache) -> list[Site]:
    """One site per ASPP head: ``<path>.hook_branch0, 1, ...`` and ``<path>.hook_pool`` all captured."""
    names = cache.names()
    sites = []
    for name in names:
        path, _, tail = name.rpartition(".")
        if tail != "hook_branch0":
            continue
        pre = f"{path}." if path else ""
        hooks = {}
        while f"{pre}hook_branch{len(hooks)}" in names:
            hooks[f"branch{len(hooks)}"] = f"{pre}hook_branch{len(hooks)}"
        if f"{pre}hook_pool" not in names:
            raise ValueError(f"{path or '<model>'}: the ASPP branches were captured without {pre}hook_pool; "
                             f"capture every branch and the pooling one (or every hook)")
        hooks["pool"] = f"{pre}hook_pool"
        grid = tuple(int(v) for v in cache[hooks["branch0"]].shape[-2:])
        sites.append(Site(path=path, kind=KIND, hooks=hooks, grid=grid,
                          order=max(names.index(n) for n in hooks.values())))
    return sites


def rates_of(cache: Cache, site: Site) -> tuple[int, ...]:
    """The dilation rates of the site's dilated branches, from the captured module."""
    head = cache.module(site.path)
    rates = getattr(head, "rates", None)
    if rates is None or len(rates) != len(site.hooks) - 2:
        raise ValueError(f"{site.path or '<model>'} ({type(head).__name__}) has no 'rates' for its "
                         f"{len(site.hooks) - 2} dilated branches; give an ocrviz ASPPHead")
    return tuple(int(r) for r in rates)


def _project_weight(cache: Cache, site: Site) -> np.ndarray | None:
    model = getattr(cache, "model", None)                  # duck-typed caches may not know it
    head = model.get_submodule(site.path) if model is not None else None
    if not hasattr(head, "projection_weights"):
        return None
    return torch.cat(list(head.projection_weights().values()), dim=1).detach().double().cpu().numpy()


def branch_shares(cache: Cache, site: Site, batch_index: int = 0,
                  project_weight: Any = "model", cell: tuple[int, int] | None = None) -> tuple[np.ndarray, str]:
    """(HW x nb branch shares, the convention they rest on); 1 x nb for ``cell`` only.

    ``project_weight``: "model" (the captured head's ``projection_weights()``
    when it has them, else the branch outputs' own norms), None (the norms) or
    a C x sum(C_b) array.
    """
    r, c = (slice(None), slice(None)) if cell is None else (slice(cell[0], cell[0] + 1), slice(cell[1], cell[1] + 1))
    arrays = [cache[n][batch_index][:, r, c].detach().double().cpu().numpy()     # C x h x w (or C x 1 x 1)
              for n in site.hooks.values()]
    pw = _project_weight(cache, site) if isinstance(project_weight, str) and project_weight == "model" \
        else project_weight
    pw = None if pw is None else (pw.detach().cpu().numpy() if hasattr(pw, "detach") else np.asarray(pw))
    return aspp_branch_shares(arrays, pw), CONVENTION if pw is not None else CONVENTION_NORMS


def read(cache: Cache, site: Site, cell: tuple[int, int], batch_index: int = 0) -> ContextMap:
    """Cell ``(row, col)``'s tap map at ``site``."""
    shares, convention = branch_shares(cache, site, batch_index, cell=cell)       # 1 x nb
    return from_arrays(shares[0], rates_of(cache, site), cell, site.grid,
                       site=site.path, convention=convention)


def masses(cache: Cache, site: Site, frac: np.ndarray, batch_index: int = 0) -> np.ndarray:
    """HW x O: every cell's tap map's mass on each of the O cell maps ``frac`` (O x h x w)."""
    return mass_on(branch_shares(cache, site, batch_index)[0], rates_of(cache, site), frac)


def head_logits(cache: Cache, site: Site, batch_index: int = 0) -> torch.Tensor | None:
    """K x h x w main logits at feature resolution: the head's classifier on ``hook_project`` (eval mode:
    the dropout between them is the identity); None when ``hook_project`` was not captured."""
    name = f"{site.path}.hook_project" if site.path else "hook_project"
    if name not in cache.names():
        return None
    head = cache.module(site.path)
    with torch.no_grad():
        return head.classifier(cache[name][batch_index: batch_index + 1])[0]
