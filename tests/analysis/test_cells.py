from __future__ import annotations

import numpy as np
import pytest

from ocrviz.analysis.cells import deepest_cell, labels_at_cells


def test_labels_at_cells_reads_centre_pixels() -> None:
    labels = np.arange(10 * 12).reshape(10, 12)
    got = labels_at_cells(labels, stride=4, feat_hw=(3, 3))
    assert got.tolist() == [[labels[y, x] for x in (2, 6, 10)] for y in (2, 6, 9)]   # last row clipped


def test_deepest_cell_is_the_centre_of_a_square() -> None:
    mask = np.zeros((9, 9), bool)
    mask[1:8, 2:9] = True
    assert deepest_cell(mask) == (4, 5)
    with pytest.raises(ValueError, match="empty"):
        deepest_cell(np.zeros((3, 3), bool))
