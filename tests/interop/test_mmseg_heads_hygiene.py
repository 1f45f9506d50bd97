"""Every MMSeg head: no hook survives a raising run, capture leaves the output unchanged, every map has
mass 1 and is exact xor a stated convention, and a changed upstream arithmetic raises."""
from __future__ import annotations

import pytest
import torch

import ocrviz
from mmseg_heads import Spy, check_mass, hooks_left, image, spy_softmax
from ocrviz.capture import CaptureMismatchError

pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore:.*build_loss:UserWarning", "ignore:.*avg_non_ignore:UserWarning")


# -- every head: forward order, nothing left behind -----------------------------------------------------
ALL = ("nl_model", "da_model", "cc_model", "psp_model", "gc_model", "dnl_model", "ann_model", "isa_model",
       "ema_model", "segformer_model")


@pytest.mark.parametrize("fixture", ALL)
def test_every_head_leaves_no_hook_after_a_raising_run_and_captures_again(fixture, request) -> None:
    model = request.getfixturevalue(fixture)
    with pytest.raises(RuntimeError):
        ocrviz.run_with_cache(model, torch.randn(1, 5, 64, 96))       # wrong channel count: raises in the stem
    assert hooks_left(model) == []
    logits, cache = ocrviz.run_with_cache(model, image(11))
    assert hooks_left(model) == []
    with torch.no_grad():
        plain = model(image(11))
    first = lambda t: t[0] if isinstance(t, (tuple, list)) else t     # noqa: E731  (DAHead returns three)
    assert torch.allclose(first(logits), first(plain), atol=1e-5)     # capture does not change the output
    maps = ocrviz.context_maps(cache, (20, 30))
    assert maps and len(maps) == len(cache.context_sites)
    for m in maps:
        check_mass(m)
        assert m.exact != bool(m.convention)


def _sharper(spy: Spy) -> None:
    spy.fn = lambda t, dim=None, **kw: torch.softmax(1.5 * t, dim)


def _break(fixture: str, model, monkeypatch) -> None:
    """Change the upstream arithmetic so that ocrviz's recomputation must disagree."""
    from mmseg.models.utils import self_attention_block as sab
    import mmseg.models.decode_heads.ema_head as ema_head
    if fixture in ("ann_model", "isa_model"):
        _sharper(spy_softmax(monkeypatch, sab))
    elif fixture == "ema_model":
        _sharper(spy_softmax(monkeypatch, ema_head))
    elif fixture == "gc_model":
        block = model.decode_head.gc_block
        monkeypatch.setattr(block.softmax, "forward", lambda t: torch.softmax(1.5 * t, dim=2))
    elif fixture == "dnl_model":
        block = model.decode_head.dnl_block
        monkeypatch.setattr(block, "temperature", block.temperature)   # ocrviz reads it: change the op instead
        orig = block.embedded_gaussian
        monkeypatch.setattr(block, "embedded_gaussian", lambda a, b: orig(1.5 * a, b))
    elif fixture == "segformer_model":
        attn = next(m for m in model.backbone.modules() if isinstance(m, torch.nn.MultiheadAttention))
        orig = attn.forward
        monkeypatch.setattr(attn, "forward", lambda *a, **k: (lambda o: (1.01 * o[0], o[1]))(orig(*a, **k)))


@pytest.mark.parametrize("fixture", ("ann_model", "isa_model", "ema_model", "gc_model", "dnl_model", "segformer_model"))
def test_changed_upstream_arithmetic_raises_and_leaves_no_hook(fixture, request, monkeypatch) -> None:
    model = request.getfixturevalue(fixture)
    _break(fixture, model, monkeypatch)
    with pytest.raises(CaptureMismatchError):
        ocrviz.run_with_cache(model, image(12))
    assert hooks_left(model) == []
