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

Own object: the pixel's instance for thing classes (``instances > 0``), its
class region for stuff.  Cells are scored by the fraction of their
``stride x stride`` pixels that belong to the object.

Example::

    share = ocr_own_object_share(sim_map, region_weights, labels, instances, stride=8)  # h x w
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .aspp_taps import aspp_taps
from .cells import labels_at_cells


def context_map(sim_row: np.ndarray, region_weights: np.ndarray) -> np.ndarray:
    """``sum_k sim_row[k] * region_weights[k]``: K, K x h x w -> h x w (sums to 1)."""
    return np.tensordot(np.asarray(sim_row, np.float64), np.asarray(region_weights, np.float64), axes=1)


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


def region_mass(region_weights: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """K x O: the mass of region k's weights (K x h x w) on object o (``frac`` O x h x w cell fractions).

    Pixel p's context-map mass on o is then ``sim[p] @ region_mass(...)[:, o]``."""
    return np.einsum("khw,ohw->ko", np.asarray(region_weights, np.float64), np.asarray(frac, np.float64))


def aspp_tap_fractions(frac: np.ndarray, rates: Sequence[int]) -> np.ndarray:
    """O x (len(rates) + 2) x h x w: per branch, the share of its taps at each cell that land on object o.

    ``frac`` O x h x w (fraction of each cell covered by object o).  Branches:
    1x1 (the cell itself), one per dilated rate (nine taps, 1/9 each, zero
    padding off the grid), image pooling (all cells equally)."""
    frac_t = torch.from_numpy(np.asarray(frac, np.float64))[:, None]             # O x 1 x h x w
    per_branch = [frac_t]                                                         # 1x1: the cell itself
    for r in rates:                                                               # 9 taps, zero padding
        kernel = torch.full((1, 1, 3, 3), 1.0 / 9, dtype=torch.float64)
        per_branch.append(F.conv2d(frac_t, kernel, padding=int(r), dilation=int(r)))
    per_branch.append(frac_t.mean(dim=(2, 3), keepdim=True).expand_as(frac_t))   # pool: all cells
    return torch.cat(per_branch, 1).numpy()                                       # O x nb x h x w


def ocr_own_object_share(sim_map: np.ndarray, region_weights: np.ndarray, labels: np.ndarray,
                         instances: np.ndarray | None = None, stride: int = 8) -> np.ndarray:
    """h x w: mass of each pixel's OCR context map on its own object.

    ``sim_map`` HW x K (one image), ``region_weights`` K x h x w, ``labels`` H x W.
    """
    k, h, w = region_weights.shape
    frac, centre = _object_fractions(object_ids(labels, instances), stride, (h, w))
    mass = region_mass(region_weights, frac)                                     # K x O: region k on object o
    own = mass[:, centre.ravel()].T                                              # HW x K
    return (np.asarray(sim_map, np.float64) * own).sum(1).reshape(h, w)          # h x w


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
    taps = aspp_tap_fractions(frac, rates)                                        # O x 5 x h x w
    own = taps[centre.ravel(), :, np.arange(h * w) // w, np.arange(h * w) % w]    # HW x 5
    return (shares * own).sum(1).reshape(h, w)                                    # h x w


def aspp_tap_map(row: int, col: int, shares_row: Sequence[float], rates: Sequence[int], stride: int,
                 feat_hw: tuple[int, int], image_hw: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Where ASPP's taps for cell (row, col) land, each branch weighted by its share: h x w.

    1x1: the cell itself; dilated: 1/9 of the branch on each of its nine taps;
    pool: spread evenly.  Taps off the grid read zero padding; their weight is
    returned separately (it lands on no cell), so ``map.sum() + off_grid == 1``.
    The per-pixel picture of what :func:`aspp_own_object_share` sums.
    """
    h, w = feat_hw
    m, off_grid = np.zeros((h, w)), 0.0
    for branch, share in zip(aspp_taps(row, col, rates, stride, feat_hw, image_hw), shares_row):
        if branch.kind == "pool":
            m += share / (h * w)
            continue
        for tap in branch.taps:
            if tap.inside:
                m[tap.cell] += share / len(branch.taps)
            else:
                off_grid += share / len(branch.taps)
    return m, off_grid
