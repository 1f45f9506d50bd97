"""The explorer opens MMSeg 1.2.2's own context-head segmentors (built from their configs, random lively
weights), each by its context sites: every site's entry, at the cell a click selects, holds the map
ocrviz.context_maps reads at that pixel (within half an 8-bit code) and its strip is that map's mass by
the explorer's cell classes.  Heads drawn by a stated convention (PSP's bins, ASPP's and DeepLabV3+'s taps)
get the gradient ERF beside them, computed in the kernel on click and equal to
ocrviz.context.gradient_erf_map on the same segmentor."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ocrviz
from site_specs import raw as _raw
from ocrviz.context import context_maps
from ocrviz.normalisation import input_normalisation, normalise

H, W = 64, 128                       # d8 heads: an 8 x 16 grid
CELL = (5, 11)
NAMES = [f"c{i}" for i in range(19)]


@pytest.fixture(scope="module")
def image():
    torch.set_num_threads(1)
    return (np.random.default_rng(5).random((H, W, 3)) * 255).astype(np.uint8)


def _open(model, image, **kw):
    from ocrviz.widgets import Explorer

    ex = Explorer(model, image, class_names=NAMES, selected=list(CELL), **kw)
    _, cache = ocrviz.run_with_cache(model, normalise(image, *input_normalisation(model)))
    return ex, cache


@pytest.mark.parametrize("fixture", ["nl_model", "dnl_model", "da_model", "cc_model", "isa_model", "ema_model",
                                     "ann_model", "gc_model", "psp_model"])
def test_explorer_opens_an_mmseg_head_by_its_sites(fixture, image, request):
    model = request.getfixturevalue(fixture)
    ex, cache = _open(model, image)
    d = ex.data
    assert d.sim_map is None and d.feat_hw == (8, 16)
    label = d.sites[0]["label"]
    assert type(model.decode_head).__name__ in label
    entries = [e for e in d.sites[0]["sites"] if "rollout_of" not in e]
    want = context_maps(cache, (CELL[0] * 8 + 3, CELL[1] * 8 + 4))
    assert [e["site"] for e in entries] == [m.site for m in want]
    cls = d.cell_classes()
    q = CELL[0] * 16 + CELL[1]
    for e, m in zip(entries, want):
        assert e["exact"] == m.exact and e["grid"] == [8, 16] and m.cell == CELL
        scale = float(np.frombuffer(_raw(e["scales"]), "<f4")[q])
        codes = np.frombuffer(_raw(e["maps"]), np.uint8).reshape(128, 128)
        assert np.abs(codes[q] * scale - m.weights.reshape(-1)).max() <= scale / 2 + 1e-9
        mass = np.frombuffer(_raw(e["class_mass"]), "<f4").reshape(128, 19)[q]
        want_mass = m.mass_by_class(cls, NAMES)
        np.testing.assert_allclose(mass, [want_mass[n] for n in NAMES], atol=2e-6)
    assert ("erf" in d.sites[0]) == (fixture == "psp_model")


def _erf_by_hand(model, x: torch.Tensor, py: int, px: int) -> np.ndarray:
    """|d logit / d input| of pixel (py, px)'s predicted class, MMSeg's 1/8 logits resized as MMSeg's own
    inference does (bilinear, the decode head's align_corners), summed over channels, mean per 8 x 8
    cell, normalised to sum 1."""
    from mmseg.models.utils import resize

    inp = x.detach().clone().requires_grad_(True)
    out = resize(model(inp), size=x.shape[-2:], mode="bilinear", align_corners=model.decode_head.align_corners)
    out[0, int(out[0, :, py, px].argmax()), py, px].backward()
    g = inp.grad[0].abs().sum(0).reshape(H // 8, 8, W // 8, 8).mean(axis=(1, 3)).numpy()     # h x w
    return g / g.sum()


@pytest.mark.parametrize("config", ["deeplabv3_r50-d8", "deeplabv3plus_r50-d8"])
def test_mmseg_aspp_heads_get_the_gradient_erf_beside_their_taps(config, image):
    from mmseg_heads import build

    from ocrviz.context import gradient_erf_map

    model = build(config)
    ex, cache = _open(model, image, show_erf=True)
    (e,) = [e for e in ex.sites[0]["sites"]]
    assert ex.sites[0]["erf"] is True and not e["exact"] and "3x3 bottleneck" in e["convention"]
    x = normalise(image, *input_normalisation(model))
    for y, xc in [CELL, (1, 2)]:
        ex.select(y, xc)
        assert ex.erf_cell == [y, xc] and ex.erf_status == ""
        want = gradient_erf_map(model, x, (y * 8 + 4, xc * 8 + 4))               # the cell's centre pixel
        np.testing.assert_allclose(want.weights, _erf_by_hand(model, x, y * 8 + 4, xc * 8 + 4), atol=1e-6)
        got = np.frombuffer(ex.erf_map, np.uint8).astype(np.float64).reshape(8, 16) * ex.erf_scale
        assert ex.erf_scale == pytest.approx(want.weights.max() / 255, rel=1e-4)
        assert np.abs(got - want.weights).max() <= ex.erf_scale / 2 + 1e-6 * want.weights.max()
        mass = want.mass_by_class(ex.data.cell_classes(), NAMES)
        np.testing.assert_allclose(ex.erf_mass, [mass[n] for n in NAMES], atol=1e-5)
