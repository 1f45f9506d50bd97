"""SegFormer (real MMSeg MiT-B0, random lively weights) in the saved explorer page, offline: its attention
layers live on four grids.  Picking a stage-3 layer (8 x 16 cells, stride 16) draws, for the clicked
pixel, the map of the 8 x 16 cell under it, outlined dashed; the page's strip and top colour equal
ocrviz.context_maps' map at that pixel, counted as drawn (each coarse cell shared by the 4 x 4 explorer
cells it covers; computed here by a reshape).  The whole-backbone rollout's strip equals
transformer.rollout's map of the last-stage cell on the first stage's grid."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ocrviz
from dom import cell_point, read_state
from site_specs import block_mass
from ocrviz.context import context_maps, transformer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interop"))      # MMSeg's models, built as there
pytestmark = pytest.mark.browser


def _block_mass(weights: np.ndarray, cls: np.ndarray, names) -> dict:
    return dict(zip(names, map(float, block_mass(weights, cls, len(names)))))


def test_a_coarse_mit_layer_and_the_rollout_read_back(browser, tmp_path, shots):
    from mmseg_heads import build_segformer

    from ocrviz.data.toycity import make_scene
    from ocrviz.normalisation import input_normalisation, normalise
    from ocrviz.widgets import Explorer

    torch.set_num_threads(1)
    model = build_segformer()
    scene = make_scene(3, 128, 256)
    names = [f"class {i}" for i in range(19)]
    ex = Explorer(model, scene.image, class_names=names, selected=[13, 41])
    entries = ex.data.sites[0]["sites"]
    stage3 = next(i for i, e in enumerate(entries) if e["grid"] == [8, 16])
    whole = len(entries) - 1
    ex.site_pick = [stage3]
    path = ex.save_html(tmp_path / "segformer.html")
    _, cache = ocrviz.run_with_cache(model, normalise(scene.image, *input_normalisation(model)))
    cls = ex.data.cell_classes()

    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, offline=True)
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route(re.compile(r"^https?://"), lambda route: route.abort())
    page.goto(path.as_uri())
    page.wait_for_selector("#ocrviz-root[data-ready=true]", timeout=60_000)
    panel = page.locator("[data-panel=site-0]")
    for y, x in [(13, 41), (30, 2)]:
        canvas = page.locator("canvas.ocrviz-image")
        canvas.click(position=cell_point(canvas, y, x, 4, (128, 256)))
        page.wait_for_function(f"() => document.querySelector('.ocrviz-explorer').dataset.y === '{y}' && "
                               f"document.querySelector('.ocrviz-explorer').dataset.x === '{x}'")
        want = context_maps(cache, (y * 4 + 2, x * 4 + 2))[stage3]
        assert want.cell == (y // 4, x // 4)
        assert panel.get_attribute("data-site-grid") == "8x16"
        assert panel.get_attribute("data-site-cell") == f"{y // 4},{x // 4}"
        st = read_state(page.locator(".ocrviz-explorer"))["panels"]["site-0"]
        mass = _block_mass(want.weights, cls, names)
        np.testing.assert_allclose([st["mass"][n] for n in names], [mass[n] for n in names], atol=2e-6)
        # drawn: each coarse cell's weight over its 4 x 4 explorer cells
        assert float(st["vmax"]) == pytest.approx(want.weights.max() / 16, rel=1e-5)
    said = panel.locator(".ocrviz-site-note")
    assert said.is_visible() and "8 x 16 (stride 16)" in said.text_content()
    page.screenshot(path=str(shots / "segformer_stage3.png"), full_page=True)

    panel.locator("select.ocrviz-site-pick").select_option(str(whole))
    page.wait_for_function(f"() => document.querySelector('[data-panel=site-0]').dataset.site === '{whole}'")
    want = transformer.rollout(cache, (30 // 8, 2 // 8))
    st = read_state(page.locator(".ocrviz-explorer"))["panels"]["site-0"]
    mass = want.mass_by_class(cls, names)
    np.testing.assert_allclose([st["mass"][n] for n in mass], list(mass.values()), atol=2e-6)
    assert panel.get_attribute("data-exact") == "false" and transformer.PATCH_EMBED in panel.get_attribute(
        "data-convention")
    assert panel.get_attribute("data-cell-grid") == "4x8" and panel.get_attribute("data-site-cell") == "3,0"
    page.screenshot(path=str(shots / "segformer_rollout.png"), full_page=True)
    assert errors == []
    ctx.close()
