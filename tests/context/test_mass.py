"""Where a map's mass lies: cell classes, mass by class (the explorer's data-mass), masses over cell maps, ERF.

Each number is compared with a computation written here from the float
tensors: the model's own head run on the captured features for the cell
classes, loops over cells for the masses, torch autograd for the ERF.
"""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "capture"))
from capture_helpers import tiny_aspp, tiny_ocrnet  # noqa: E402

import ocrviz  # noqa: E402
from ocrviz import context  # noqa: E402
from ocrviz.context import dilated_taps, ocr  # noqa: E402
from random_bn import randomise_bn  # noqa: E402

NAMES = ("road", "car", "sky", "tree")
HW = (32, 48)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return randomise_bn(tiny_ocrnet(), 1, spread=0.5), randomise_bn(tiny_aspp(), 2, spread=0.5)


@pytest.fixture(scope="module")
def x():
    return torch.randn(1, 3, *HW, generator=torch.Generator().manual_seed(3))


def own_head_classes(model, cache) -> np.ndarray:
    with torch.no_grad():
        _, main = model.head(cache.features)                                  # 1 x K x h x w, the model's own
    return main[0].argmax(0).numpy()


def test_cell_classes_are_the_argmax_of_the_heads_own_logits(models, x) -> None:
    for model in models:
        _, cache = ocrviz.run_with_cache(model, x)
        got = context.cell_classes(cache)
        want = own_head_classes(model, cache)
        assert got.shape == cache.feature_size and (got == want).all()
        assert len(np.unique(want)) > 1                                       # a map, not a constant


def test_mass_by_class_sums_each_class_cells_and_off_grid(models, x) -> None:
    for model in models:
        _, cache = ocrviz.run_with_cache(model, x)
        cls = own_head_classes(model, cache)
        for px in [(0, 0), (17, 30), (31, 47)]:
            (m,) = ocrviz.context_maps(cache, px)
            got = context.mass_by_class(m, cls, NAMES)
            assert list(got) == [*NAMES, "off-grid"]
            for k, name in enumerate(NAMES):
                want = sum(m.weights[i, j] for i in range(cls.shape[0]) for j in range(cls.shape[1]) if cls[i, j] == k)
                assert got[name] == pytest.approx(want, abs=1e-12)
            assert got["off-grid"] == m.off_grid
            assert sum(got.values()) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="class ids in 0..1"):
        context.mass_by_class(m, cls, NAMES[:2])
    with pytest.raises(ValueError, match="grid"):
        context.mass_by_class(m, cls[:, :-1], NAMES)


def test_ocr_mass_by_class_equals_torch_from_the_cached_tensors(models, x) -> None:
    model = models[0]
    _, cache = ocrviz.run_with_cache(model, x)
    sim, rw = cache.sim_map[0].double(), cache.region_weights[0].double()    # HW x K, K x h x w
    cls = torch.from_numpy(own_head_classes(model, cache))
    h, w = cache.feature_size
    for px in [(3, 3), (20, 40)]:
        cell = (px[0] * h // HW[0], px[1] * w // HW[1])
        cmap = torch.einsum("k,khw->hw", sim[cell[0] * w + cell[1]], rw)
        want = {n: float(cmap[cls == k].sum()) for k, n in enumerate(NAMES)}
        got = context.mass_by_class(ocrviz.context_maps(cache, px)[0], cls, NAMES)
        assert max(abs(got[n] - want[n]) for n in NAMES) <= 1e-6 and got["off-grid"] == 0.0


@pytest.mark.parametrize("which", [0, 1])
def test_context_masses_rows_are_the_per_cell_maps_on_each_cell_map(models, x, which, monkeypatch) -> None:
    _, cache = ocrviz.run_with_cache(models[which], x)
    h, w = cache.feature_size
    frac = np.random.default_rng(0).random((3, h, w))                           # O x h x w
    ((site, got),) = context.context_masses(cache, frac)
    producer = (ocr, dilated_taps)[which]
    for q in [0, w + 1, h * w - 1]:
        m = producer.read(cache, site, (q // w, q % w))
        assert np.abs(got[q] - (m.weights[None] * frac).sum((1, 2))).max() <= 1e-9
    # a producer without ``masses`` is read cell by cell, to the same numbers
    bare = SimpleNamespace(KIND=producer.KIND, find_sites=producer.find_sites, read=producer.read)
    monkeypatch.setattr(context, "PRODUCERS", (bare,))
    ((_, slow),) = context.context_masses(cache, frac)
    assert np.abs(slow - got).max() <= 1e-9


def test_gradient_erf_map_is_the_normalised_input_gradient(models, x) -> None:
    aspp = models[1]
    px = (13, 29)
    m = context.gradient_erf_map(aspp, x, px)
    inp = x.clone().requires_grad_(True)
    out = aspp(inp)                                                             # 1 x K x H x W
    target = int(out[0, :, px[0], px[1]].argmax())
    (g,) = torch.autograd.grad(out[0, target, px[0], px[1]], inp)
    cells = F.avg_pool2d(g[0].abs().sum(0)[None, None], 8)[0, 0].double()       # h x w
    assert m.extra["target"] == target and m.cell == (1, 3)
    assert np.abs(m.weights - (cells / cells.sum()).numpy()).max() <= 1e-6
    assert not m.exact and "gradient" in m.convention and m.off_grid == 0.0
    assert abs(m.weights.sum() - 1) <= 1e-9


def test_explorer_data_panel_masses_equal_the_float_tensors(models, x) -> None:
    from ocrviz.widgets.explorer import _capture_data

    ocr_model, aspp = models
    for m in models:
        m.class_names = list(NAMES)
    image = (torch.rand(*HW, 3, generator=torch.Generator().manual_seed(4)) * 255).to(torch.uint8).numpy()
    data, xin = _capture_data(ocr_model, image, None, aspp_model=aspp, class_names=None, palette=None,
                              transform=None, aspp_rates=None)
    _, oc = ocrviz.run_with_cache(ocr_model, xin)
    _, ac = ocrviz.run_with_cache(aspp, xin)
    assert (data.cell_pred == own_head_classes(ocr_model, oc)).all()
    assert (data.aspp_cell_pred == own_head_classes(aspp, ac)).all()
    h, w = data.feat_hw
    erf = np.random.default_rng(1).random((h, w))
    for cell in [(0, 0), (2, 4), (h - 1, w - 1)]:
        got = data.panel_masses(*cell, erf=erf)
        assert sorted(got) == ["aspp-context", "aspp-erf", "ocr-context"]
        px = (cell[0] * 8, cell[1] * 8)
        for panel, cache, cls in (("ocr-context", oc, data.cell_pred), ("aspp-context", ac, data.aspp_cell_pred)):
            (want,) = ocrviz.context_maps(cache, px)
            want_mass = context.mass_by_class(want, cls, NAMES)
            assert max(abs(got[panel][n] - want_mass[n]) for n in want_mass) <= 1e-6
        e = erf / erf.sum()
        assert got["aspp-erf"] == pytest.approx({**{n: float(e[data.aspp_cell_pred == k].sum())
                                                    for k, n in enumerate(NAMES)}, "off-grid": 0.0}, abs=1e-12)
        for masses in got.values():
            assert sum(masses.values()) == pytest.approx(1.0, abs=1e-6)
