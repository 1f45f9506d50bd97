"""The explorer's lifecycle: explorers are freed once closed, a failed ERF does not poison later clicks."""
from __future__ import annotations

import ctypes
import gc
import weakref

import numpy as np
import pytest
import torch

import ocrviz
from ocrviz.analysis.erf import gradient_erf, make_erf_fn
from ocrviz.widgets import Explorer

TINY = dict(widths=(8, 8, 16, 16))


def _rss_mb() -> float:
    """Resident memory after a full collection and giving freed heap back (glibc keeps it otherwise)."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2 ** 20


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    ocr = ocrviz.create_model("ocrnet", num_classes=6).eval()
    aspp = ocrviz.create_model("aspp", num_classes=6, **TINY, channels=8, rates=(1, 2, 3)).eval()
    image = np.random.default_rng(0).integers(0, 256, (256, 384, 3), dtype=np.uint8)
    return ocr, aspp, image


def test_twenty_explorers_created_and_closed_leave_the_memory_where_it_was(models) -> None:
    """M1: each explorer used to stay alive (anywidget's file watcher held it): +50 MB for these 20."""
    ocr, _, image = models
    for _ in range(2):                       # warm-up: one-time allocations (oneDNN kernels, imports)
        ex = Explorer(ocr, image)
        ex.close()
        del ex
    before = _rss_mb()
    for _ in range(20):
        ex = Explorer(ocr, image)
        ex.close()
        del ex
    after = _rss_mb()
    assert after - before < 10, f"{after - before:.1f} MB more after 20 explorers (was +50 MB)"


@pytest.mark.parametrize("with_erf", [False, True], ids=["plain", "aspp+erf"])
def test_a_closed_deleted_explorer_is_garbage_collected(models, with_erf: bool) -> None:
    ocr, aspp, image = models
    ex = Explorer(ocr, image[:64, :96], aspp_model=aspp if with_erf else None)
    if with_erf:
        ex.mode, ex.show_erf = "aspp", True                               # an ERF computed: the graph is kept
        assert ex.erf_cell == ex.selected
    ref = weakref.ref(ex)
    ex.close()
    del ex
    gc.collect()
    assert ref() is None


def test_a_failed_erf_does_not_poison_later_clicks(models) -> None:
    """W6: after one failure every later click said AttributeError: '_GraphERF' object has no attribute 'out'."""
    _, aspp, image = models
    x = torch.from_numpy(image[:64, :96].transpose(2, 0, 1).astype(np.float32) / 255)[None]
    fail = {"now": True}

    def flaky_forward(inp):                                               # e.g. out of memory, once
        if fail["now"]:
            raise RuntimeError("out of memory (simulated)")
        return type(aspp).forward(aspp, inp)

    aspp.forward = flaky_forward
    try:
        erf = make_erf_fn(aspp, x)
        with pytest.raises(RuntimeError, match="simulated"):
            erf(2, 3)
        fail["now"] = False                                               # the cause is gone
        got = erf(2, 3)
    finally:
        del aspp.forward
    want = gradient_erf(aspp, x, 2 * 8 + 4, 3 * 8 + 4).cells              # Captum, independent
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)


def test_a_failed_erf_is_reported_then_the_next_click_works(models) -> None:
    _, aspp, image = models
    ocr = ocrviz.create_model("ocrnet", num_classes=6, **TINY, mid_channels=16, key_channels=8).eval()
    calls = {"n": 0}
    inner: dict = {}

    def erf_fn(y: int, x: int):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("out of memory (simulated)")
        return inner["fn"](y, x)

    small = image[:64, :96]
    ex = Explorer(ocr, small, aspp_model=aspp, erf_fn=erf_fn)
    inner["fn"] = make_erf_fn(aspp, torch.from_numpy(((small / 255 - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225))
                                                     .astype(np.float32).transpose(2, 0, 1))[None])
    ex.select(2, 3)
    ex.mode, ex.show_erf = "aspp", True
    assert "ERF failed" in ex.erf_status and "simulated" in ex.erf_status and ex.erf_cell == [-1, -1]
    ex.select(4, 5)
    assert ex.erf_status == "" and ex.erf_cell == [4, 5]
    ex.select(2, 3)                                                       # the failed cell, asked again
    assert ex.erf_status == "" and ex.erf_cell == [2, 3] and calls["n"] == 3


def test_class_names_palette_and_feat_hw_are_validated() -> None:
    """W7: values that made the live view fail or show wrong names are refused with a clear message."""
    import traitlets

    from ocrviz.widgets.synthetic import synthetic_data

    ex = Explorer.from_data(synthetic_data(h=6, w=10, k=4, output_stride=4, seed=2))
    ex.class_names = ["road", "car", "sky", "tree"]                       # the right count: fine
    ex.palette = [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]
    assert ex.class_names[1] == "car" and ex.palette[1] == [255, 0, 0]
    bad = {
        "class_names": (["road", "car"], "2 class names given; this model has 4 classes"),
        "palette": ([[0, 0, 0]] * 3, "palette has 3 colours; give 4"),
        "feat_hw": ([3, 20], "feat_hw=\\[3, 20\\]; it is the feature grid of the shown data, \\[6, 10\\]"),
    }
    for trait, (value, message) in bad.items():
        before = getattr(ex, trait)
        with pytest.raises(traitlets.TraitError, match=message):
            setattr(ex, trait, value)
        assert getattr(ex, trait) == before                               # unchanged
    for value in ([[0, 0, 0], [256, 0, 0], [0, 0, 0], [0, 0, 0]], [[0, 0]] * 4):
        with pytest.raises(traitlets.TraitError, match="triples of ints 0..255"):
            ex.palette = value
    with pytest.raises(traitlets.TraitError, match="expected an int"):   # traitlets' own type check
        ex.palette = [[0, 0, 0.5]] * 4
    with pytest.raises(traitlets.TraitError, match="5 class names given"):
        ex.class_names = ["road", "car", "sky", "tree", "bus"]
    with pytest.raises(traitlets.TraitError, match="positive ints|feature grid"):
        ex.feat_hw = [6, 10, 1]
