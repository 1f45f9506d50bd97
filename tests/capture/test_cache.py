"""Cache: look-ups, roles and their meaning (not only shapes)."""
from __future__ import annotations

import pytest
import torch

from ocrviz.capture import Cache, CacheKeyError, run_with_cache
from ocrviz.capture.cache import name_matches

BLOCK = "head.ocr_distri_head.object_context_block."


@pytest.fixture
def cache(ocr_model, image) -> Cache:
    return run_with_cache(ocr_model, image)[1]


def test_getitem_exact_suffix_and_role(cache) -> None:
    full = cache[BLOCK + "hook_sim_map"]
    assert cache["hook_sim_map"] is full
    assert cache["object_context_block.hook_sim_map"] is full
    assert cache["sim_map"] is full
    assert cache.sim_map is full


def test_unknown_and_ambiguous_names_raise_keyerror_listing_names(cache) -> None:
    with pytest.raises(KeyError) as err:
        cache["hook_nope"]
    assert "hook_features" in str(err.value) and BLOCK + "hook_sim_map" in str(err.value)
    # "logits" would only be ambiguous by plain string suffix; dotted suffix keeps it unique.
    assert cache["logits"] is cache["hook_logits"]
    # a partial component is not a suffix
    with pytest.raises(KeyError):
        cache["sim_map" + "x"]


def test_ambiguous_suffix() -> None:
    c = Cache()
    c._add("a.hook_x", torch.zeros(1))
    c._add("b.hook_x", torch.ones(1))
    with pytest.raises(CacheKeyError, match="ambiguous.*a.hook_x, b.hook_x"):
        c["hook_x"]
    assert "hook_x" not in c and "a.hook_x" in c
    assert c["b.hook_x"].item() == 1


def test_len_contains_iter_names(cache) -> None:
    assert len(cache) == 14 == len(list(cache)) == len(cache.items())
    assert "hook_sim_map" in cache and "sim_map" in cache and "hook_nope" not in cache and 3 not in cache
    assert cache.names()[0] == "hook_features" and cache.names()[-1] == "hook_logits"
    assert cache.get("hook_nope") is None


def test_name_matches_is_component_wise() -> None:
    assert name_matches("context", BLOCK + "hook_context")
    assert not name_matches("context", BLOCK + "hook_object_context")
    assert name_matches("object_context", "x.object_context")
    assert not name_matches("ntext", BLOCK + "hook_context")


def test_role_shapes(cache, ocr_model) -> None:
    b, k, c, ck, (h, w) = 2, 4, 16, 8, cache.feature_size
    assert (h, w) == (4, 6)
    expected = {"features": (b, 16, h, w), "soft_regions": (b, k, h, w), "pixel_feats": (b, c, h, w),
                "region_weights": (b, k, h, w), "proxies": (b, c, k), "query": (b, h * w, ck),
                "key": (b, ck, k), "value": (b, k, ck), "sim_map": (b, h * w, k), "context": (b, ck, h, w),
                "object_context": (b, c, h, w), "augmented": (b, c, h, w), "head_logits": (b, k, h, w),
                "logits": (b, k, 32, 48)}
    assert {r: tuple(getattr(cache, r).shape) for r in expected} == expected


def test_role_semantics(cache) -> None:
    rw = cache.region_weights
    torch.testing.assert_close(rw.sum((2, 3)), torch.ones(2, 4))               # sums to 1 over pixels
    torch.testing.assert_close(rw, torch.softmax(cache.soft_regions.flatten(2), 2).view_as(rw))
    proxies = torch.einsum("bkhw,bchw->bck", rw, cache.pixel_feats)
    torch.testing.assert_close(cache.proxies, proxies, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(cache.sim_map.sum(-1), torch.ones(2, 24))       # rows sum to 1 over K
    logits = cache.query @ cache.key * 8 ** -0.5
    torch.testing.assert_close(cache.sim_map, torch.softmax(logits, -1), rtol=1e-4, atol=1e-6)
    ctx = torch.einsum("bnk,bkc->bcn", cache.sim_map, cache.value).reshape(cache.context.shape)
    torch.testing.assert_close(cache.context, ctx, rtol=1e-4, atol=1e-5)
    assert cache.object_context.min() >= 0                                      # f_up ends with ReLU


def test_sim_map_grid_is_a_view_in_grid_layout(cache) -> None:
    grid = cache.sim_map_grid()
    h, w = cache.feature_size
    assert grid.shape == (2, 4, h, w)
    assert grid.data_ptr() == cache.sim_map.data_ptr()
    # pixel (i, j) is row i * w + j of the sim map
    i, j = 2, 5
    torch.testing.assert_close(grid[:, :, i, j], cache.sim_map[:, i * w + j, :], rtol=0, atol=0)


def test_aspp_model_has_no_sim_map_and_says_which_hooks_exist(aspp_model, image) -> None:
    _, cache = run_with_cache(aspp_model, image)
    with pytest.raises(KeyError) as err:
        cache.sim_map
    msg = str(err.value)
    assert "head.hook_branch0" in msg and "no 'sim_map' hook" in msg
    assert cache.feature_size == (4, 6)
    with pytest.raises(KeyError, match="hook_project"):
        cache.sim_map_grid()


def test_feature_size_needs_a_grid_hook(ocr_model, image) -> None:
    _, cache = run_with_cache(ocr_model, image, names=["hook_sim_map", "hook_query"])
    with pytest.raises(KeyError, match="feature_size needs"):
        cache.feature_size


def test_repr_lists_names_and_shapes(cache) -> None:
    assert f"{BLOCK}hook_sim_map: (2, 24, 4)" in repr(cache)
    assert repr(Cache()) == "Cache(empty)"
