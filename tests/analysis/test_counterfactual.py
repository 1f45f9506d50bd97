"""rerun_head equals a full forward in which a forward hook replaced the same HookPoint output."""
from __future__ import annotations

import pytest
import torch

import ocrviz
from ocrviz.analysis import rerun_head

from ocr_helpers import hooked_head_logits, small_hrnet, toy_ocr

ATOL = 1e-5


@pytest.fixture(scope="module", params=["toy_ocr", "small_hrnet"])
def setup(request):
    model = toy_ocr() if request.param == "toy_ocr" else small_hrnet()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 64, 96, generator=g)
    _, cache = ocrviz.run_with_cache(model, x)
    return model, x, cache


def test_no_edit_equals_the_cached_head_logits(setup) -> None:
    model, _, cache = setup
    got = rerun_head(model, cache)
    assert got.shape == cache.head_logits.shape
    assert float((got - cache.head_logits).abs().max()) <= ATOL


def _random_rows(shape, dim, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g) ** 4                 # peaked, far from the model's own
    return x / x.sum(dim, keepdim=True)


def test_sim_map_edit_equals_a_hooked_forward(setup) -> None:
    model, x, cache = setup
    sim = _random_rows(cache.sim_map.shape, -1, 2)          # B x HW x K
    want = hooked_head_logits(model, x, {"hook_sim_map": lambda out: sim})
    got = rerun_head(model, cache, sim_map=sim)
    assert float((want - cache.head_logits).abs().max()) > 1e-4      # the edit does change the logits
    assert float((got - want).abs().max()) <= ATOL


def test_region_weights_edit_equals_a_hooked_forward(setup) -> None:
    model, x, cache = setup
    b, k, h, w = cache.region_weights.shape
    rw = _random_rows((b, k, h * w), -1, 3).reshape(b, k, h, w)   # each map sums to 1 over pixels
    want = hooked_head_logits(model, x, {"hook_region_weights": lambda out: rw})
    got = rerun_head(model, cache, region_weights=rw)
    assert float((want - cache.head_logits).abs().max()) > 1e-4
    assert float((got - want).abs().max()) <= ATOL


def test_both_edits_equal_a_forward_with_both_hooks(setup) -> None:
    model, x, cache = setup
    b, k, h, w = cache.region_weights.shape
    rw = _random_rows((b, k, h * w), -1, 4).reshape(b, k, h, w)
    sim = _random_rows(cache.sim_map.shape, -1, 5)
    want = hooked_head_logits(model, x, {"hook_region_weights": lambda out: rw, "hook_sim_map": lambda out: sim})
    got = rerun_head(model, cache, sim_map=sim, region_weights=rw)
    assert float((got - want).abs().max()) <= ATOL


def test_bad_edits_say_what_is_wrong(setup) -> None:
    model, _, cache = setup
    with pytest.raises(ValueError, match="shape"):
        rerun_head(model, cache, sim_map=cache.sim_map[:, :-1])
    with pytest.raises(ValueError, match="sum to 1"):
        rerun_head(model, cache, sim_map=cache.sim_map * 2)
    with pytest.raises(ValueError, match="sum to 1"):
        rerun_head(model, cache, region_weights=cache.region_weights + 0.1)
    with pytest.raises(ValueError, match="negative"):
        bad = cache.sim_map.clone()
        bad[0, 0, 0] -= 0.5
        bad[0, 0, 1] += 0.5
        rerun_head(model, cache, sim_map=bad)


def test_unsupported_models_list_what_is_supported() -> None:
    model = ocrviz.create_model("aspp", num_classes=3, widths=(8, 8, 8, 8), channels=8).eval()
    _, cache = ocrviz.run_with_cache(model, torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="not supported.*Supported: .*HRNetW48OCR"):
        rerun_head(model, cache)


def test_training_mode_is_refused() -> None:
    model = toy_ocr()
    _, cache = ocrviz.run_with_cache(model, torch.randn(1, 3, 32, 32))
    model.train()
    with pytest.raises(ValueError, match="eval"):
        rerun_head(model, cache)
