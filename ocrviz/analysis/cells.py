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


def class_fractions(labels: np.ndarray, num_classes: int, feat_hw: tuple[int, int]) -> np.ndarray:
    """H x W class map (255 = ignore) -> K x h x w: the fraction of each cell's pixels in each class.

    Cells are the ``H/h x W/w`` blocks (adaptive average pooling of the one-hot
    map); ignored pixels belong to no class, so a column sums to at most 1.
    Ids outside 0..K-1 other than 255 raise ``ValueError``.
    """
    import torch
    import torch.nn.functional as F

    lab = np.asarray(labels).astype(np.int64)
    bad = (lab != 255) & ((lab < 0) | (lab >= num_classes))
    if bad.any():
        raise ValueError(f"labels hold class ids {np.unique(lab[bad])[:5].tolist()} outside 0..{num_classes - 1} "
                         f"(and 255 = ignore)")
    onehot = np.zeros((num_classes + 1,) + lab.shape, np.float32)            # (K + 1) x H x W
    np.put_along_axis(onehot, np.where(lab == 255, num_classes, lab)[None], 1.0, axis=0)
    frac = F.adaptive_avg_pool2d(torch.from_numpy(onehot)[None], tuple(feat_hw))[0]  # (K + 1) x h x w
    return frac[:num_classes].numpy().astype(np.float64)                     # K x h x w
