"""analysis.bootstrap: resampled figures equal the figure recomputed on the resampled list of images."""
from __future__ import annotations

import numpy as np
import pytest

from ocrviz.analysis.bootstrap import Resamples, miou_of
from ocrviz.evaluate import metrics_from_confusion


@pytest.fixture(scope="module")
def confs() -> np.ndarray:
    rng = np.random.default_rng(3)
    c = rng.integers(0, 40, (6, 5, 5))
    c[:, np.arange(5), np.arange(5)] += 200                   # mostly right
    c[:2, 4, :] = 0                                            # class 4 absent from two images' labels ...
    c[:2, :, 4] = 0                                            # ... and predictions
    return c


def test_miou_of_equals_evaluate(confs) -> None:
    for c in [*confs, confs.sum(0)]:
        assert miou_of(c) == pytest.approx(metrics_from_confusion(c)["miou"], abs=1e-12)


def test_resampled_miou_is_the_miou_of_the_resampled_images(confs) -> None:
    rs = Resamples(n_images=6, n_boot=50, seed=11)
    draws = np.random.default_rng(11).integers(0, 6, size=(50, 6))      # the documented draw: B x N indices
    want = [metrics_from_confusion(confs[d].sum(0))["miou"] for d in draws]
    np.testing.assert_allclose(rs.miou(confs), want, atol=1e-12)
    lo, hi = rs.interval(rs.miou(confs))
    assert (lo, hi) == pytest.approx(tuple(np.quantile(want, [0.025, 0.975])))
    assert lo <= metrics_from_confusion(confs.sum(0))["miou"] <= hi


def test_ratio_and_degenerate_cases() -> None:
    rs = Resamples(n_images=4, n_boot=30, seed=0)
    num, den = np.array([1.0, 2, 3, 4]), np.array([10.0, 10, 10, 10])
    draws = np.random.default_rng(0).integers(0, 4, size=(30, 4))
    np.testing.assert_allclose(rs.ratio(num, den), [num[d].sum() / den[d].sum() for d in draws])
    assert rs.interval(rs.ratio(np.ones(4), np.ones(4) * 2)) == (0.5, 0.5)      # every image the same: no spread
    assert rs.interval(np.full(30, np.nan)) is None
    with pytest.raises(ValueError, match="one entry per image"):
        rs.sums(np.ones(3))
    with pytest.raises(ValueError, match="at least 10"):
        Resamples(n_images=4, n_boot=5)
