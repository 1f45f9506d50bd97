"""capture() / run_with_cache(): filters, one forward per capture, detach, output."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from ocrviz.capture import Cache, CaptureError, capture, run_with_cache
from ocrviz.models.hook_point import HookPoint

SIM = "head.ocr_distri_head.object_context_block.hook_sim_map"
RW = "head.ocr_gather_head.hook_region_weights"


def test_run_with_cache_returns_the_plain_forward_output(ocr_model, image) -> None:
    with torch.no_grad():
        expected = ocr_model(image)
    out, cache = run_with_cache(ocr_model, image)
    assert isinstance(cache, Cache)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    torch.testing.assert_close(cache.logits, expected, rtol=0, atol=0)


def test_forward_kwargs_are_passed_on(ocr_model, image) -> None:
    (logits, aux), cache = run_with_cache(ocr_model, image, return_aux=True)
    assert aux.shape == logits.shape
    assert len(cache) == 14


@pytest.mark.parametrize("names, expected", [
    ([SIM], [SIM]),                                    # exact
    (["hook_sim_map"], [SIM]),                         # suffix
    ("sim_map", [SIM]),                                # bare role, one string
    (["object_context_block.hook_key", "hook_region_weights"], [RW, SIM.replace("sim_map", "key")]),
    (lambda n: n.endswith("_logits"), ["head.hook_head_logits", "hook_logits"]),
])
def test_names_filter(ocr_model, image, names, expected) -> None:
    _, cache = run_with_cache(ocr_model, image, names=names)
    assert cache.names() == expected


def test_unknown_filter_name_lists_the_available_hooks(ocr_model) -> None:
    with pytest.raises(ValueError) as err:
        with capture(ocr_model, names=["hook_sim_mapp"]):
            pass
    msg = str(err.value)
    assert "'hook_sim_mapp'" in msg and SIM in msg and "hook_branch0" not in msg
    assert "Did you mean 'hook_sim_map'" in msg


def test_callable_filter_selecting_nothing_is_an_error(ocr_model) -> None:
    with pytest.raises(ValueError, match="selected none"):
        with capture(ocr_model, names=lambda n: False):
            pass


def test_filtered_out_name_says_it_was_filtered(ocr_model, image) -> None:
    _, cache = run_with_cache(ocr_model, image, names=["hook_sim_map"])
    with pytest.raises(KeyError, match="filter left it out") as err:
        cache.region_weights
    assert RW in str(err.value)


def test_hook_firing_twice_in_one_capture_raises(ocr_model, image) -> None:
    with torch.no_grad(), capture(ocr_model) as cache:
        ocr_model(image)
        with pytest.raises(CaptureError, match="fired twice"):
            ocr_model(image)
    assert len(cache) == 14   # the first pass is intact


class CallsTwice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hook_x = HookPoint()
        self.hook_y = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hook_y(self.hook_x(x) + self.hook_x(x + 1))


def test_module_called_twice_in_one_forward_raises_and_can_be_filtered_out() -> None:
    with pytest.raises(CaptureError, match="'hook_x' fired twice"):
        run_with_cache(CallsTwice(), torch.zeros(2))
    _, cache = run_with_cache(CallsTwice(), torch.zeros(2), names=["hook_y"])
    assert cache["hook_y"].tolist() == [1.0, 1.0]


def test_model_without_hooks_is_an_error() -> None:
    with pytest.raises(ValueError, match="no HookPoint modules and no recognised OCR modules"):
        run_with_cache(nn.Conv2d(3, 3, 1), torch.zeros(1, 3, 2, 2))


def test_detached_by_default_even_with_grad_enabled(ocr_model, image) -> None:
    with capture(ocr_model) as cache:
        out = ocr_model(image)
    assert out.grad_fn is not None                      # capture does not switch autograd off
    assert all(t.grad_fn is None and not t.requires_grad for t in cache.values())


def test_run_with_cache_detach_runs_without_grad(ocr_model, image) -> None:
    out, cache = run_with_cache(ocr_model, image)
    assert out.grad_fn is None and cache.sim_map.grad_fn is None


def test_foreign_false_and_auto_use_hookpoints_on_ocrviz_models(ocr_model, image) -> None:
    _, auto = run_with_cache(ocr_model, image)
    _, off = run_with_cache(ocr_model, image, foreign=False)
    assert auto.names() == off.names() and all(n.rpartition(".")[2].startswith("hook_") for n in auto.names())


def test_foreign_true_on_ocrviz_model_agrees_with_hookpoints(ocr_model, image) -> None:
    """The foreign path recomputes the sim map; on our own model it must equal the HookPoint one."""
    _, hooked = run_with_cache(ocr_model, image)
    _, foreign = run_with_cache(ocr_model, image, foreign=True)
    assert foreign.names()[0] == "head.ocr_gather_head.soft_regions"
    assert not any("hook_" in n for n in foreign.names())
    for role in ("soft_regions", "pixel_feats", "region_weights", "proxies", "query", "key", "value",
                 "sim_map", "context", "object_context", "augmented"):
        torch.testing.assert_close(getattr(foreign, role), getattr(hooked, role), rtol=1e-5, atol=1e-6)


def test_public_ocrviz_capture_stays_callable(ocr_model, image) -> None:
    """``ocrviz.capture`` stays the function, also after the subpackage's modules are imported."""
    import sys

    import ocrviz
    import ocrviz.capture.cache  # noqa: F401  (would rebind ocrviz.capture if it were lazy)
    package = sys.modules["ocrviz.capture"]
    for _ in range(2):
        with torch.no_grad(), ocrviz.capture(ocr_model, names="sim_map") as cache:
            ocr_model(image)
        assert cache.names() == [SIM]
    assert ocrviz.capture is capture and package.capture is capture and ocrviz.run_with_cache is run_with_cache and ocrviz.Cache is Cache


def test_non_module_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="takes an nn.Module, got function"):
        run_with_cache(lambda x: x, torch.zeros(1))
