"""SegFormer (real MMSeg MiT-B0) in the explorer: its eight attention layers live on four grids (strides
4, 8, 16, 32).  The explorer's grid is the first stage's (where SegformerHead predicts); every layer's
entry holds, for the cell a click selects, the map ocrviz.context_maps reads at that pixel, and its strip
counts that map as drawn: each coarse cell's weight shared equally by the f x f explorer cells it covers
(computed here with a reshape, not with ocrviz.widgets.site_grids).  The rollout entries equal
transformer.stage_rollout / transformer.rollout (themselves tested against dense per-layer matrices from
PyTorch's own per-head weights in test_mmseg_heads_attention.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ocrviz
from site_specs import block_mass as _block_mass, raw as _raw
from ocrviz.context import context_maps, transformer

H, W = 128, 256                      # MiT-B0: stage grids 32 x 64, 16 x 32, 8 x 16, 4 x 8
CELLS = [(0, 0), (13, 41), (31, 63), (20, 6)]        # explorer cells (the first stage's grid)


def _row(entry: dict, q: int) -> np.ndarray:
    gh, gw = entry["grid"]
    scales = np.frombuffer(_raw(entry["scales"]), "<f4")
    codes = np.frombuffer(_raw(entry["maps"]), np.uint8).reshape(-1, gh * gw)
    return codes[q].astype(np.float64) * float(scales[q])


@pytest.fixture(scope="module")
def opened(segformer_model):
    from ocrviz.widgets import Explorer

    torch.set_num_threads(1)
    img = (np.random.default_rng(3).random((H, W, 3)) * 255).astype(np.uint8)
    names = [f"c{i}" for i in range(19)]
    ex = Explorer(segformer_model, img, class_names=names)
    x = ocrviz.normalisation.normalise(img, *ocrviz.normalisation.input_normalisation(segformer_model))
    _, cache = ocrviz.run_with_cache(segformer_model, x)
    return ex, cache


def test_every_layer_on_its_own_grid(opened):
    ex, cache = opened
    d = ex.data
    assert d.feat_hw == (32, 64) and d.output_stride == 4
    entries = d.sites[0]["sites"]
    layers = [e for e in entries if "rollout_of" not in e]
    assert [tuple(e["grid"]) for e in layers] == [(32, 64)] * 2 + [(16, 32)] * 2 + [(8, 16)] * 2 + [(4, 8)] * 2
    assert all("why" not in e for e in entries)
    cls = d.cell_classes()
    for y, x in CELLS:
        want = context_maps(cache, (y * 4 + 1, x * 4 + 2))
        assert len(want) == len(layers)
        for m, e in zip(want, layers):
            gh, gw = e["grid"]
            f = 32 // gh
            assert m.cell == (y // f, x // f) and e["site"] == m.site and e["exact"] == m.exact
            q = m.cell[0] * gw + m.cell[1]
            scale = np.frombuffer(_raw(e["scales"]), "<f4")[q]
            assert np.abs(_row(e, q) - m.weights.reshape(-1)).max() <= scale / 2 + 1e-9
            mass = np.frombuffer(_raw(e["class_mass"]), "<f4").reshape(gh * gw, 19)[q]
            np.testing.assert_allclose(mass, _block_mass(m.weights, cls, 19), atol=2e-6)
            assert (e["grid_note"] == "") == (f == 1)
            if f > 1:
                assert f"{gh} x {gw} (stride {4 * f})" in e["grid_note"] and "shared equally" in e["grid_note"]


def test_stage_and_whole_rollouts(opened):
    ex, cache = opened
    entries = ex.data.sites[0]["sites"]
    rolls = [e for e in entries if "rollout_of" in e]
    assert [e["title"].split(": ", 1)[1] for e in rolls] == [
        *(f"MiT stage {i} rollout of 2 layers" for i in range(1, 5)), "MiT rollout of all 4 stages (last stage to first)"]
    cls = ex.data.cell_classes()
    for i, e in enumerate(rolls[:4]):
        gh, gw = e["grid"]
        for y, x in CELLS:
            cell = (y * gh // 32, x * gw // 64)
            want = transformer.stage_rollout(cache, cell, i)
            q = cell[0] * gw + cell[1]
            assert np.abs(_row(e, q) - want.weights.reshape(-1)).max() <= want.weights.max() / 510 + 1e-9
            mass = np.frombuffer(_raw(e["class_mass"]), "<f4").reshape(gh * gw, 19)[q]
            np.testing.assert_allclose(mass, _block_mass(want.weights, cls, 19), atol=2e-6)
            assert not e["exact"] and e["convention"] == transformer.ROLLOUT
    whole = rolls[-1]
    assert whole["grid"] == [32, 64] and whole["cell_grid"] == [4, 8]
    assert whole["convention"] == f"{transformer.ROLLOUT}; {transformer.PATCH_EMBED}"
    off = np.frombuffer(_raw(whole["off_grid"]), "<f4")
    for y, x in CELLS:
        cell = (y // 8, x // 8)
        want = transformer.rollout(cache, cell)
        q = cell[0] * 8 + cell[1]
        assert np.abs(_row(whole, q) - want.weights.reshape(-1)).max() <= want.weights.max() / 510 + 1e-9
        assert off[q] == pytest.approx(want.off_grid, abs=1e-6)
        mass = np.frombuffer(_raw(whole["class_mass"]), "<f4").reshape(32, 19)[q]
        np.testing.assert_allclose(mass, np.bincount(cls.ravel(), want.weights.ravel(), 19), atol=2e-6)
        assert whole["grid_note"] == ("the click selects the 4 x 8 (stride 32) cell under its centre (dashed), "
                                      "traced back to the 32 x 64 (stride 4) grid")
