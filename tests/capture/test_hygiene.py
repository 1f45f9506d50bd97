"""No hook survives a capture, a raised forward, or a refused filter; no memory creeps."""
from __future__ import annotations

import gc
import weakref

import pytest
import torch

from capture_helpers import hooks_left
from ocrviz.capture import capture, run_with_cache


def _tensor_count() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if issubclass(type(o), torch.Tensor))  # type(): no proxy __class__


def test_no_hooks_before_or_after_a_normal_run(ocr_model, image) -> None:
    assert hooks_left(ocr_model) == []
    with capture(ocr_model) as cache:
        assert len(hooks_left(ocr_model)) > 0          # the probe can see hooks
        ocr_model(image)
    assert hooks_left(ocr_model) == []
    run_with_cache(ocr_model, image)
    assert hooks_left(ocr_model) == [] and len(cache) == 14


def test_no_hooks_after_a_forward_that_raises_inside_the_model(ocr_model) -> None:
    bad = torch.randn(1, 5, 32, 32)                    # 5 channels: SegModel rejects it
    with pytest.raises(ValueError, match="expected 3 channels"):
        run_with_cache(ocr_model, bad)
    assert hooks_left(ocr_model) == []


def test_no_hooks_after_an_error_midway_through_the_forward(ocr_model, image, monkeypatch) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("boom in cls_head")
    monkeypatch.setattr(ocr_model.head.cls_head, "forward", boom)
    with pytest.raises(RuntimeError, match="boom"):
        with capture(ocr_model) as cache:
            ocr_model(image)
    assert "head.ocr_distri_head.hook_augmented" in cache.names()    # hooks had fired before the error
    assert "head.hook_head_logits" not in cache.names()
    assert hooks_left(ocr_model) == []


def test_no_hooks_after_an_exception_in_the_with_body(ocr_model) -> None:
    with pytest.raises(KeyError):
        with capture(ocr_model):
            raise KeyError("user code")
    assert hooks_left(ocr_model) == []


def test_no_hooks_after_a_refused_filter(ocr_model) -> None:
    with pytest.raises(ValueError):
        run_with_cache(ocr_model, torch.zeros(1, 3, 32, 32), names=["nope"])
    assert hooks_left(ocr_model) == []


def test_repeated_captures_do_not_grow_memory(ocr_model) -> None:
    x = torch.randn(1, 3, 16, 16)
    for _ in range(5):                                 # warm-up: lazy caches inside torch
        run_with_cache(ocr_model, x)
    before = _tensor_count()
    for _ in range(200):
        out, cache = run_with_cache(ocr_model, x)
    del out, cache
    after = _tensor_count()
    assert after - before <= 2, f"{after - before} tensors more after 200 captures"
    assert hooks_left(ocr_model) == []


def test_dropping_the_cache_frees_its_tensors(ocr_model, image) -> None:
    out, cache = run_with_cache(ocr_model, image)
    refs = [weakref.ref(t) for t in cache.values()] + [weakref.ref(cache)]
    del out, cache
    gc.collect()
    assert [r for r in refs if r() is not None] == []


def test_dropping_an_attached_cache_frees_the_graph(ocr_model, image) -> None:
    out, cache = run_with_cache(ocr_model, image, detach=False)
    refs = [weakref.ref(cache.sim_map), weakref.ref(cache)]
    del out, cache
    gc.collect()
    assert [r for r in refs if r() is not None] == []


def test_detach_false_keeps_grad_and_gradients_flow(ocr_model, image) -> None:
    out, cache = run_with_cache(ocr_model, image, detach=False)
    assert out.grad_fn is not None and cache.sim_map.grad_fn is not None and cache.features.requires_grad
    # The sim map's dependence on the backbone: d(sim_map[pixel 0, region 1]) / d(features).
    (grad,) = torch.autograd.grad(cache.sim_map[:, 0, 1].sum(), cache.features, retain_graph=True)
    assert grad.abs().sum() > 0
    cache.region_weights.sum().backward()
    assert ocr_model.head.aux_head[0].weight.grad is not None
    assert hooks_left(ocr_model) == []


def test_detach_default_has_no_grad_fn(ocr_model, image) -> None:
    image.requires_grad_(True)
    with capture(ocr_model) as cache:
        out = ocr_model(image)
    assert out.requires_grad
    assert [n for n, t in cache.items() if t.requires_grad or t.grad_fn is not None] == []
