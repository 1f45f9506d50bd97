"""ASPP taps and branch shares against hand-computed examples."""
from __future__ import annotations

import numpy as np
import pytest

from ocrviz.analysis import aspp_branch_shares, aspp_taps


def test_interior_cell_rate2_stride4() -> None:
    # grid 10 x 12, image 40 x 48, cell (5, 7), one dilated branch with rate 2
    b = aspp_taps(5, 7, rates=(2,), output_stride=4, feat_hw=(10, 12), image_hw=(40, 48))
    assert [br.kind for br in b] == ["1x1", "dilated", "pool"]
    assert [br.index for br in b] == [0, 1, 2]
    assert [t.cell for t in b[0].taps] == [(5, 7)]
    assert b[0].taps[0].pixel == (22.0, 30.0)            # (5.5 * 4, 7.5 * 4)
    cells = [t.cell for t in b[1].taps]
    assert cells == [(3, 5), (3, 7), (3, 9), (5, 5), (5, 7), (5, 9), (7, 5), (7, 7), (7, 9)]
    assert [t.pixel for t in b[1].taps][:3] == [(14.0, 22.0), (14.0, 30.0), (14.0, 38.0)]
    assert all(t.inside for t in b[1].taps)
    assert b[1].rate == 2 and b[1].rate_px == 8
    assert b[2].taps == () and b[2].extent == (0.0, 0.0, 40.0, 48.0)


def test_border_cell_flags_padding_taps_instead_of_dropping_them() -> None:
    # cell (0, 11) on a 10 x 12 grid, rate 3: row -3 and column 14 are off the grid
    b = aspp_taps(0, 11, rates=(3,), output_stride=8, feat_hw=(10, 12), image_hw=(80, 96))
    taps = b[1].taps
    assert len(taps) == 9
    inside = {t.cell: t.inside for t in taps}
    assert inside == {(-3, 8): False, (-3, 11): False, (-3, 14): False,
                      (0, 8): True, (0, 11): True, (0, 14): False,
                      (3, 8): True, (3, 11): True, (3, 14): False}
    # positions are the true (unclipped) cell centres, also outside the image
    assert taps[0].pixel == (-20.0, 68.0)                  # (-3 + .5) * 8, (8 + .5) * 8
    assert taps[8].pixel == (28.0, 116.0)


def test_three_rates_deeplab_layout() -> None:
    b = aspp_taps(64, 128, rates=(12, 24, 36), output_stride=8, feat_hw=(128, 256), image_hw=(1024, 2048))
    assert len(b) == 5 and [br.rate for br in b] == [None, 12, 24, 36, None]
    assert [br.rate_px for br in b[1:4]] == [96, 192, 288]
    # top-left tap of the rate-36 branch: cell (28, 92) -> pixel (228, 740)
    assert b[3].taps[0].cell == (28, 92) and b[3].taps[0].pixel == (228.0, 740.0)
    d = b[3].to_dict()
    assert d["branch"] == 3 and d["taps"][4] == {"y": 516.0, "x": 1028.0, "cell": [64, 128], "inside": True}


@pytest.mark.parametrize("kw, msg", [
    (dict(y=10, x=0), "outside the 10 x 12 feature grid"),
    (dict(y=0, x=0, rates=(0,)), "rates[0]=0"),
    (dict(y=0, x=0, output_stride=0), "output_stride=0"),
    (dict(y=-1, x=0), "y=-1"),
])
def test_bad_arguments_say_what_is_allowed(kw: dict, msg: str) -> None:
    args = dict(rates=(2,), output_stride=4, feat_hw=(10, 12), image_hw=(40, 48)) | kw
    with pytest.raises(ValueError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        aspp_taps(**args)


def test_branch_shares_use_the_projection_weights() -> None:
    b0 = np.ones((1, 2, 2))                 # contributes 2 * 1 = 2
    b1 = -3 * np.ones((1, 2, 2))            # contributes 1 * -3 -> |.| = 3
    shares = aspp_branch_shares([b0, b1], project_weight=np.array([[2.0, 1.0]]))
    assert shares.shape == (4, 2)
    np.testing.assert_allclose(shares, [[0.4, 0.6]] * 4, rtol=1e-6)
    # without weights: the raw norms 1 and 3
    np.testing.assert_allclose(aspp_branch_shares([b0, b1])[0], [0.25, 0.75], rtol=1e-6)


def test_branch_shares_broadcast_pool_and_zero_pixels() -> None:
    b0 = np.zeros((3, 2, 3))
    b0[:, 0, 0] = [3, 4, 0]                 # norm 5 at pixel 0, zero elsewhere
    pool = np.zeros((3, 1, 1))              # image pooling, broadcast
    s = aspp_branch_shares([b0, pool])
    assert s.shape == (6, 2)
    np.testing.assert_allclose(s[0], [1.0, 0.0])
    np.testing.assert_allclose(s[1:], 0.5)  # all-zero pixel -> equal shares
    np.testing.assert_allclose(s.sum(1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="input channels"):
        aspp_branch_shares([b0, pool], project_weight=np.ones((2, 5)))
