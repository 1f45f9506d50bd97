"""How much of a pixel's context comes from its own object: OCR vs ASPP.

OCR.  Pixel p's context is ``sum_k sim[p, k] * proxy_k`` and proxy k is a
weighted average of pixels with weights ``region_weights_k`` (summing to 1),
so the *context map* ``c_p = sum_k sim[p, k] * region_weights_k`` is a
distribution over feature cells: the share of p's context drawn from cell q.
Its mass on p's own object is the "own-object share".

ASPP.  A dilated 3x3 branch reads nine fixed cells; the 1x1 branch the cell
itself; the pooling branch all cells equally.  Weighting each branch by its
share of p's projection (``aspp_branch_shares``) and each tap equally gives
the analogous distribution over cells (taps on the zero padding carry weight
but land on no object).  This is "where ASPP's taps land", not a gradient.

Both maps are ``ocrviz.context``'s (``context/ocr.py``, ``context/dilated_taps.py``);
this module scores them on objects.  :func:`own_object_share` scores any head's
map the same way (self-attention, DANet's PAM, a criss-cross pass, PSP's bins,
OCR, ASPP), from a capture, through ``ocrviz.context.context_masses``: the
head-specific part is only the producer.

Own object: the pixel's instance for thing classes (``instances > 0``), its
class region for stuff.  Cells are scored by the fraction of their
``stride x stride`` pixels that belong to the object.

Example::

    share = ocr_own_object_share(sim_map, region_weights, labels, instances, stride=8)  # h x w
    logits, cache = ocrviz.run_with_cache(model, x)
    share = own_object_share(cache, labels, instances, stride=8)                          # any head, h x w
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .. import context
from ..context import dilated_taps, ocr
from .cells import labels_at_cells

# OCR's map of one cell, K, K x h x w -> h x w, and region k's mass on each object (K x O).
context_map = ocr.weights
region_mass = ocr.region_mass
# ASPP's tap map of one cell is ``dilated_taps.tap_weights``; its vectorised form:
aspp_tap_fractions = dilated_taps.tap_fractions


def object_ids(labels: np.ndarray, instances: np.ndarray | None = None) -> np.ndarray:
    """H x W object id: instance id for things, ``-(class + 1)`` for stuff, ``-10**6`` for ignore."""
    labels = np.asarray(labels).astype(np.int64)
    ids = -(labels + 1)
    if instances is not None:
        inst = np.asarray(instances).astype(np.int64)
        ids = np.where(inst > 0, inst, ids)
    return np.where(labels == 255, -10**6, ids)


def _object_fractions(ids: np.ndarray, stride: int, feat_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per object: fraction of each cell it covers (O x h x w) and each cell's centre object index (h x w)."""
    h, w = feat_hw
    uniq, inverse = np.unique(ids, return_inverse=True)
    onehot = np.zeros((len(uniq),) + ids.shape, np.float32)               # O x H x W
    np.put_along_axis(onehot, inverse.reshape(1, *ids.shape), 1.0, axis=0)
    frac = F.adaptive_avg_pool2d(torch.from_numpy(onehot)[None], (h, w))[0].numpy()  # O x h x w
    centre = labels_at_cells(inverse.reshape(ids.shape), stride, (h, w))  # h x w object index
    return frac, centre


def ocr_own_object_share(sim_map: np.ndarray, region_weights: np.ndarray, labels: np.ndarray,
                         instances: np.ndarray | None = None, stride: int = 8) -> np.ndarray:
    """h x w: mass of each pixel's OCR context map on its own object.

    ``sim_map`` HW x K (one image), ``region_weights`` K x h x w, ``labels`` H x W.
    """
    k, h, w = region_weights.shape
    frac, centre = _object_fractions(object_ids(labels, instances), stride, (h, w))
    mass = ocr.mass_on(sim_map, region_weights, frac)                            # HW x O: cell p on object o
    return mass[np.arange(h * w), centre.ravel()].reshape(h, w)                  # h x w


def aspp_own_object_share(branch_shares: np.ndarray, rates: Sequence[int], labels: np.ndarray,
                          instances: np.ndarray | None = None, stride: int = 8) -> np.ndarray:
    """h x w: mass of each pixel's ASPP tap distribution on its own object.

    ``branch_shares`` HW x 5 (1x1, three dilated, pool), rows sum to 1.
    """
    shares = np.asarray(branch_shares, np.float64)
    hw = shares.shape[0]
    ids = object_ids(labels, instances)
    h, w = ids.shape[0] // stride, ids.shape[1] // stride
    if h * w != hw:
        h, w = -(-ids.shape[0] // stride), -(-ids.shape[1] // stride)
    frac, centre = _object_fractions(ids, stride, (h, w))
    mass = dilated_taps.mass_on(shares, rates, frac)                              # HW x O: cell p on object o
    return mass[np.arange(h * w), centre.ravel()].reshape(h, w)                   # h x w


def aspp_tap_map(row: int, col: int, shares_row: Sequence[float], rates: Sequence[int], stride: int,
                 feat_hw: tuple[int, int], image_hw: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Where ASPP's taps for cell (row, col) land, each branch weighted by its share: (h x w, off_grid).

    ``dilated_taps.tap_weights`` (``stride`` and ``image_hw`` do not change which cells the taps
    hit); the per-pixel picture of what :func:`aspp_own_object_share` sums.
    """
    return dilated_taps.tap_weights(row, col, shares_row, rates, feat_hw)


def own_object_share(cache: object, labels: np.ndarray, instances: np.ndarray | None = None, stride: int = 8, *,
                     site: str | None = None, batch_index: int = 0, exact_only: bool = True) -> np.ndarray:
    """h x w: mass of each cell's context map on the object under its centre pixel, for any head.

    ``cache`` from ``ocrviz.run_with_cache(model, x)`` on the image whose ``labels`` (H x W) and
    ``instances`` are given; ``site`` picks one context site by module path when the cache has several
    (CCNet's passes ``head.passes.0`` / ``head.passes.1``).  With ``exact_only`` (default) a site whose
    map rests on a convention (PSP, ASPP) is refused: say ``exact_only=False`` to score it anyway.
    """
    sites = [(p, s) for p, s in context.find_sites(cache) if site is None or s.path == site]
    if len(sites) != 1:
        raise ValueError(f"own_object_share reads one context site; the cache has "
                         f"{[s.path for _, s in context.find_sites(cache)] or 'none'}"
                         + (f" and none at {site!r}" if site is not None and not sites else "")
                         + "; pick one with site=...")
    p, s = sites[0]
    m = p.read(cache, s, (0, 0), batch_index)
    if exact_only and not m.exact:
        raise ValueError(f"the map at {s.path!r} ({s.kind}) rests on a convention ({m.convention}); "
                         f"pass exact_only=False to score it anyway")
    h, w = s.grid
    frac, centre = _object_fractions(object_ids(labels, instances), stride, (h, w))
    ((_, mass),) = context.context_masses(cache, frac, batch_index=batch_index, path=s.path, kind=s.kind)  # HW x O
    return mass[np.arange(h * w), centre.ravel()].reshape(h, w)                  # h x w
