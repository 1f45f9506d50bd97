"""Feature cells: where they sit in the image, and picking one inside a mask.

Cell ``(i, j)`` covers image pixels ``[i*s, (i+1)*s) x [j*s, (j+1)*s)``; its
centre pixel ``(i*s + s//2, j*s + s//2)`` (clipped to the image) is the pixel
whose label the cell is compared with.

    >>> labels_at_cells(np.arange(16).reshape(4, 4), stride=2, feat_hw=(2, 2)).tolist()
    [[5, 7], [13, 15]]
"""
from __future__ import annotations

import numpy as np


def labels_at_cells(labels: np.ndarray, stride: int, feat_hw: tuple[int, int]) -> np.ndarray:
    """H x W -> h x w: the value at each cell's centre pixel."""
    h, w = feat_hw
    cy = np.minimum(labels.shape[0] - 1, np.arange(h) * stride + stride // 2)
    cx = np.minimum(labels.shape[1] - 1, np.arange(w) * stride + stride // 2)
    return labels[np.ix_(cy, cx)]                                        # h x w


def deepest_cell(mask: np.ndarray) -> tuple[int, int]:
    """The cell deepest inside ``mask`` (h x w bool): erode until one more step would empty it."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        raise ValueError("deepest_cell: the mask is empty; there is no cell to pick")
    while True:
        inner = np.zeros_like(mask)
        inner[1:-1, 1:-1] = (mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1]
                             & mask[1:-1, :-2] & mask[1:-1, 2:])
        if not inner.any():
            cells = np.argwhere(mask)
            return tuple(int(v) for v in cells[len(cells) // 2])
        mask = inner
