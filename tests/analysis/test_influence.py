"""region_influence equals brute force: one hooked full forward per (cell, region) edit."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ocrviz
from ocrviz.analysis import region_influence
from ocrviz.analysis.influence import dropped_rows

from ocr_helpers import hooked_head_logits, small_hrnet, toy_ocr


def _brute(model, x, cache, b, row, col, k) -> float:
    """Logit drop at the cell's predicted class when region k leaves its sim row (full forward with a hook)."""
    h, w = cache.feature_size
    p = row * w + col
    base = cache.head_logits[b, :, row, col]
    pred = int(base.argmax())

    def edit(out):
        out = out.clone()
        r = out[b, p].clone()
        r[k] = 0
        out[b, p] = r / r.sum()
        return out

    edited = hooked_head_logits(model, x, {"hook_sim_map": edit})[b, :, row, col]
    return float(base[pred] - edited[pred])


@pytest.mark.parametrize("which", ["toy_ocr", "small_hrnet", "toycity-ocr"])
def test_equals_brute_force_on_random_cells(which: str) -> None:
    if which == "toycity-ocr":
        model = ocrviz.load_model("toycity-ocr")
        from ocrviz.data.dataset import normalize
        from ocrviz.data.toycity import make_scene
        x = normalize(make_scene(5, 64, 128).image)[None]
    else:
        model = toy_ocr() if which == "toy_ocr" else small_hrnet()
        x = torch.randn(2, 3, 32, 64, generator=torch.Generator().manual_seed(0))
    _, cache = ocrviz.run_with_cache(model, x)
    full = region_influence(model, cache)                                 # B x HW x K
    b, hw, k = cache.sim_map.shape
    assert full.shape == (b, hw, k)
    rng = np.random.default_rng(0)
    h, w = cache.feature_size
    cells = [(int(rng.integers(b)), int(rng.integers(h)), int(rng.integers(w))) for _ in range(24)]
    some = region_influence(model, cache, cells=cells)                    # N x K
    assert some.shape == (len(cells), k)
    scale = max(1.0, float(cache.head_logits.abs().max()))
    for n, (bi, r, c) in enumerate(cells):
        kk = int(rng.integers(k))
        want = _brute(model, x, cache, bi, r, c, kk)
        assert abs(float(some[n, kk]) - want) <= 1e-5 * scale, (bi, r, c, kk, float(some[n, kk]), want)
        assert abs(float(full[bi, r * w + c, kk]) - want) <= 1e-5 * scale
    assert float(full.abs().max()) > 1e-4                                 # not trivially zero


def test_dropped_rows_renormalise_and_handle_one_hot_rows() -> None:
    sim = torch.tensor([[0.5, 0.3, 0.2], [1.0, 0.0, 0.0]])
    rows = dropped_rows(sim)                                              # 2 x 4 x 3
    assert torch.allclose(rows[:, 0], sim)
    assert torch.allclose(rows[0, 1], torch.tensor([0.0, 0.6, 0.4]))
    assert torch.allclose(rows[1, 1], torch.tensor([0.0, 0.5, 0.5]))     # nothing left: uniform over the rest
    assert torch.allclose(rows[1, 2], sim[1])
    assert torch.allclose(rows.sum(-1), torch.ones(2, 4))


def test_cells_outside_the_map_are_refused() -> None:
    model = toy_ocr()
    _, cache = ocrviz.run_with_cache(model, torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="outside"):
        region_influence(model, cache, cells=[(0, 4, 0)])
