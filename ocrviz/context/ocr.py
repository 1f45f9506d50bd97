"""OCR's context map: sum_k sim[p, k] * region_weights[k], exact.

Pixel p's object context is ``sum_k sim[p, k] * value_k`` and region k's
proxy is ``sum_q region_weights[k, q] * X_q`` (each region's weights sum to 1
over cells; value_k is a linear map of proxy_k before f_down's BN-ReLU), so
the share of p's context read from cell q is
``c_p(q) = sum_k sim[p, k] * region_weights[k, q]``: a distribution over
cells (the map sums to 1, nothing falls off the grid).  The sources are the K
regions and the source weights the sim row.

A site is a captured ``sim_map`` hook (``...hook_sim_map`` on ocrviz models,
``<block>.sim_map`` on official HRNet-OCR, openseg and MMSeg trees captured by
``capture/foreign.py``) paired with the ``region_weights`` hook captured last
before it (the gather that made the block's regions).

Example::

    logits, cache = ocrviz.run_with_cache(model, x)
    site = find_sites(cache)[0]
    m = read(cache, site, (3, 5))          # ContextMap, m.weights h x w, m.source_weights K
"""
from __future__ import annotations

import numpy as np

from ..capture.cache import Cache, name_matches
from .types import ContextMap, Site

KIND = "ocr"


# -- the arithmetic (numpy; shared by every consumer) --------------------------------------------
def weights(sim_row: np.ndarray, region_weights: np.ndarray) -> np.ndarray:
    """``sum_k sim_row[k] * region_weights[k]``: K, K x h x w -> h x w (float64, sums to 1)."""
    return np.tensordot(np.asarray(sim_row, np.float64), np.asarray(region_weights, np.float64), axes=1)


def region_mass(region_weights: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """K x O: the mass of region k's weights (K x h x w) on cell map o (``frac`` O x h x w)."""
    return np.einsum("khw,ohw->ko", np.asarray(region_weights, np.float64), np.asarray(frac, np.float64))


def mass_on(sim: np.ndarray, region_weights: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """HW x O: every cell's context-map mass on each cell map o (``frac`` O x h x w, e.g. class fractions).

    Row p equals ``(weights(sim[p], region_weights) * frac).sum((1, 2))`` without forming the HW maps.
    """
    return np.asarray(sim, np.float64) @ region_mass(region_weights, frac)         # HW x O


def from_arrays(sim_row: np.ndarray, region_weights: np.ndarray, cell: tuple[int, int], *, site: str = "",
                sources: tuple[str, ...] | None = None) -> ContextMap:
    """The ContextMap of one cell from its sim row (K) and the region weights (K x h x w)."""
    row = np.asarray(sim_row, np.float64)
    k = len(row)
    return ContextMap(weights=weights(row, region_weights), off_grid=0.0, cell=tuple(int(v) for v in cell),
                      exact=True, convention="", site=site, kind=KIND,
                      sources=tuple(sources) if sources is not None else tuple(f"region {i}" for i in range(k)),
                      source_weights=row, extra={"spreads": np.asarray(region_weights)})


# -- the producer contract ------------------------------------------------------------------------
def find_sites(cache: Cache) -> list[Site]:
    """One site per captured similarity map, paired with the region weights captured last before it."""
    names = cache.names()
    sites = []
    for i, name in enumerate(names):
        if not name_matches("sim_map", name):
            continue
        before = [n for n in names[:i] if name_matches("region_weights", n)]
        if not before:
            raise ValueError(f"{name} was captured without the region weights of its gather "
                             f"(a 'region_weights' hook before it); capture both, e.g. "
                             f"names=['hook_sim_map', 'hook_region_weights'], or capture every hook")
        rw_name = before[-1]
        grid = tuple(int(v) for v in cache[rw_name].shape[-2:])
        if cache[name].shape[1] != grid[0] * grid[1]:
            raise ValueError(f"{name} has {cache[name].shape[1]} rows but {rw_name} is {grid[0]} x {grid[1]}; "
                             f"the block's queries were pooled or resized (scale > 1), which OCR's map "
                             f"does not cover")
        sites.append(Site(path=name.rpartition(".")[0], kind=KIND,
                          hooks={"sim_map": name, "region_weights": rw_name}, grid=grid, order=i))
    return sites


def _np(t) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def source_names(cache: Cache, k: int) -> tuple[str, ...]:
    """The regions' names: the captured model's class names when it has K of them, else 'region k'."""
    model = cache.model
    names = getattr(model, "class_names", None) or (getattr(model, "dataset_meta", None) or {}).get("classes")
    if names is not None and len(names) == k:
        return tuple(str(n) for n in names)
    return tuple(f"region {i}" for i in range(k))


def read(cache: Cache, site: Site, cell: tuple[int, int], batch_index: int = 0) -> ContextMap:
    """Cell ``(row, col)``'s OCR context map at ``site`` (image ``batch_index`` of the batch)."""
    h, w = site.grid
    r, c = cell
    sim = cache[site.hooks["sim_map"]][batch_index]                              # HW x K
    rw = _np(cache[site.hooks["region_weights"]][batch_index])                   # K x h x w
    return from_arrays(_np(sim[r * w + c]), rw, (r, c), site=site.path, sources=source_names(cache, rw.shape[0]))


def masses(cache: Cache, site: Site, frac: np.ndarray, batch_index: int = 0) -> np.ndarray:
    """HW x O: every cell's map's mass on each of the O cell maps ``frac`` (O x h x w)."""
    return mass_on(_np(cache[site.hooks["sim_map"]][batch_index]),
                   _np(cache[site.hooks["region_weights"]][batch_index]), frac)
