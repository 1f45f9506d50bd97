"""Cue-free masks: checked against a brute-force window scan and a hand example."""
from __future__ import annotations

import numpy as np
import pytest

from ocrviz.data.ambiguity import CUE_FREE_RADIUS, cue_free
from ocrviz.data.toycity import make_scene


def _brute(amb: np.ndarray, r: int) -> np.ndarray:
    h, w = amb.shape
    out = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            if amb[y, x]:
                win = amb[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1]
                out[y, x] = bool((win == amb[y, x]).all())
    return out


def test_hand_example() -> None:
    amb = np.full((7, 9), 2, np.uint8)
    amb[3, 0] = 0                                   # a kerb pixel on the left edge
    amb[:, 8] = 1                                   # a column of another kind
    got = cue_free(amb, 2)
    # radius 2: columns 0..2 see the kerb on rows 1..5, columns 6..7 see the other kind
    want = np.zeros_like(got)
    want[:, 3:6] = True
    want[[0, 6], 0:3] = True
    np.testing.assert_array_equal(got, want)
    assert not cue_free(amb, 0)[3, 0] and cue_free(amb, 0)[amb > 0].all()


@pytest.mark.parametrize("r", [1, 3, 6])
def test_matches_brute_force(r: int) -> None:
    rng = np.random.default_rng(r)
    amb = np.repeat(np.repeat(rng.integers(0, 4, (6, 8)), 5, 0), 5, 1).astype(np.uint8)  # 30 x 40 blocks
    amb[rng.random(amb.shape) < 0.01] = 0
    np.testing.assert_array_equal(cue_free(amb, r), _brute(amb, r))


def test_on_a_scene_cue_free_pixels_are_ambiguous_and_see_only_their_kind() -> None:
    s = make_scene(10_000_003)
    m = cue_free(s.ambiguity)
    assert m.any() and not (m & ~s.ambiguous).any()
    r = CUE_FREE_RADIUS
    ys, xs = np.nonzero(m)
    for y, x in list(zip(ys, xs))[:: max(1, len(ys) // 50)]:
        win = s.ambiguity[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1]
        assert (win == s.ambiguity[y, x]).all()
    # growing the radius can only remove pixels
    assert not (cue_free(s.ambiguity, r + 10) & ~m).any()


@pytest.mark.parametrize("bad,match", [(np.zeros((2, 3, 4)), "H x W"), (np.zeros((4, 4)), "radius")])
def test_bad_input(bad, match) -> None:
    with pytest.raises(ValueError, match=match):
        cue_free(bad, -1 if match == "radius" else 3)


def test_the_radius_is_the_reach_of_the_no_context_models_logit() -> None:
    """The premise of 'cue-free': the shipped FCN's logit at a pixel does not depend
    on any input pixel more than CUE_FREE_RADIUS away (autograd support), and the
    radius is tight (some pixel's logit does reach that far)."""
    import torch

    import ocrviz

    torch.manual_seed(0)
    fcn = ocrviz.load_model("toycity-fcn")
    x = torch.randn(1, 3, 256, 512, requires_grad=True)
    out = fcn(x)                                                   # 1 x K x 256 x 512
    reach = 0
    for y in range(0, 256, 3):
        for px in (200, 207):
            g, = torch.autograd.grad(out[0, :, y, px].sum(), x, retain_graph=True)
            nz = (g[0].abs().sum(0) > 0).nonzero()                 # input pixels that matter
            reach = max(reach, int((nz - torch.tensor([y, px])).abs().max()))
    assert reach <= CUE_FREE_RADIUS, reach
    assert reach >= CUE_FREE_RADIUS - 2, reach


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, bool])
def test_matches_brute_force_on_random_maps_sizes_and_radii(dtype) -> None:
    # sizes down to one pixel, radii past the image, codes too small to fill a window (skipped)
    rng = np.random.default_rng(7)
    for _ in range(25):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        amb = np.repeat(np.repeat(rng.integers(0, 4, (h // 3 + 1, w // 3 + 1)), 3, 0), 3, 1)[:h, :w]
        amb = amb.astype(dtype)
        for r in (0, 2, 5, 40):
            np.testing.assert_array_equal(cue_free(amb, r), _brute(amb, r))
