"""A float32 spatial softmax over a million cells (an 8000 x 8000 image at stride 8) sums to 1 only within
float32 rounding: ExplorerData's check accepts it (it refused one off by 0.0024 after a 179 s forward),
and still refuses maps that are not distributions (logits; a sum off by 1 %)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ocrviz.widgets.field_checks import SUM_TOL, distribution as _distribution, sum_tolerance


def test_a_float32_softmax_over_a_million_cells_is_a_distribution():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1000 * 1000, generator=g) * 6                       # K x HW, peaked
    w = torch.softmax(logits, dim=-1).reshape(2, 1000, 1000).numpy()               # float32
    w[0] *= np.float32(1.00241)                           # off by 0.0024, as the 8000 x 8000 capture was
    worst = np.abs(w.sum(axis=(1, 2), dtype=np.float64) - 1).max()
    assert SUM_TOL < worst <= sum_tolerance(10 ** 6)
    out = _distribution("region_weights", w, (2, 1000, 1000), (1, 2), "each map")
    assert out.dtype == np.float32 and out.shape == (2, 1000, 1000)


def test_what_is_not_a_distribution_is_still_refused():
    assert sum_tolerance(19) == SUM_TOL and sum_tolerance(2 ** 24) == 1.0
    rows = np.full((4, 19), 1 / 19, np.float32)
    rows[1] *= 1.01                                                                # off by 1 %
    with pytest.raises(ValueError, match="sim_map is not normalised.*off by 0.01"):
        _distribution("sim_map", rows, (4, 19), (1,), "each row")
    big = np.full((1, 1000, 1000), 1.1e-6, np.float32)                             # sums to 1.1
    with pytest.raises(ValueError, match="not normalised"):
        _distribution("region_weights", big, (1, 1000, 1000), (1, 2), "each map")
