"""Other heads beside OCR in the explorer (``compare=``), in the exported page, offline, at 1400 px:
a self-attention map (toycity-sa) and each CCNet pass (toycity-cc) read back from the page against
``ocrviz.context_maps`` on the same input: data-mass (the strip) against the float map's mass by
class, data-vmax (the drawn map's maximum) against the float map's; the site picker changes the
map, not the page's height."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

import ocrviz
from dom import cell_point, read_state
from ocrviz.context import context_maps

pytestmark = pytest.mark.browser
CELLS = [(14, 40), (3, 5), (25, 60), (16, 20)]         # (row, col) feature cells of the 32 x 64 grid


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from ocrviz.data.toycity import make_scene
    from ocrviz.normalisation import input_normalisation, normalise
    from ocrviz.widgets import Explorer

    torch.set_num_threads(1)
    scene = make_scene(3, 256, 512)
    ocr = ocrviz.load_model("toycity-ocr")
    ex = Explorer(ocr, scene.image, scene.labels, compare=["toycity-sa", "toycity-cc"])
    path = ex.save_html(tmp_path_factory.mktemp("heads") / "heads.html")
    x = normalise(scene.image, *input_normalisation(ocr))         # the explorer's input (the model's default)
    caches = {name: ocrviz.run_with_cache(ocrviz.load_model(name), x)[1] for name in ("toycity-sa", "toycity-cc")}
    return path, ex.data, caches


@pytest.fixture(scope="module")
def page(browser, setup, shots):
    path = setup[0]
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, offline=True)
    page = ctx.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.route(re.compile(r"^https?://"), lambda route: route.abort())
    page.goto(path.as_uri())
    page.wait_for_selector("#ocrviz-root[data-ready=true]", timeout=60_000)
    yield page
    ctx.close()


def _select(page, data, y: int, x: int) -> dict:
    canvas = page.locator("canvas.ocrviz-image")
    canvas.click(position=cell_point(canvas, y, x, data.output_stride, data.image_hw))
    page.wait_for_function(f"() => {{ const r = document.querySelector('.ocrviz-explorer'); "
                           f"return r.dataset.y === '{y}' && r.dataset.x === '{x}'; }}")
    return read_state(page.locator(".ocrviz-explorer"))


def _check(panel: dict, want, data) -> None:
    """The page's strip and top colour against the float ContextMap ``want``."""
    assert panel["why"] == ""
    mass = want.mass_by_class(data.cell_classes().astype(np.int64), data.class_names)
    got = panel["mass"]
    assert list(got) == list(mass)
    np.testing.assert_allclose([got[k] for k in mass], [mass[k] for k in mass], atol=2e-6)
    assert float(panel["vmax"]) == pytest.approx(want.weights.max(), rel=1e-5)


def test_self_attention_and_criss_cross_pass_against_context_maps(page, setup, shots):
    _, data, caches = setup
    for y, x in CELLS:
        st = _select(page, data, y, x)
        pixel = (y * data.output_stride, x * data.output_stride)
        (sa,) = context_maps(caches["toycity-sa"], pixel)
        cc = context_maps(caches["toycity-cc"], pixel)
        assert sa.kind == "self_attention" and sa.exact and [m.kind for m in cc[:2]] == ["criss_cross"] * 2
        _check(st["panels"]["site-0"], sa, data)
        _check(st["panels"]["site-1"], cc[0], data)
        # a pass reaches only the cell's row and column: its mass lies there
        assert cc[0].weights[y].sum() + cc[0].weights[:, x].sum() >= 0.999
    panel = page.locator("[data-panel=site-1]")
    assert panel.get_attribute("data-exact") == "true" and panel.get_attribute("data-head") == "toycity-cc"
    assert "exact" in panel.locator(".ocrviz-legend-text").text_content()
    page.screenshot(path=str(shots / "heads_explorer_sa_cc.png"), full_page=True)
    assert page.errors == []


def test_site_picker_shows_the_second_pass_without_moving_the_page(page, setup, shots):
    _, data, caches = setup
    y, x = CELLS[0]
    before = _select(page, data, y, x)
    page.locator("[data-panel=site-1] select.ocrviz-site-pick").select_option("1")
    page.wait_for_function("() => document.querySelector('[data-panel=site-1]').dataset.site === '1'")
    after = read_state(page.locator(".ocrviz-explorer"))
    cc = context_maps(caches["toycity-cc"], (y * data.output_stride, x * data.output_stride))
    assert page.locator("[data-panel=site-1]").get_attribute("data-site-name") == cc[1].site
    _check(after["panels"]["site-1"], cc[1], data)
    assert after["panels"]["site-1"]["mass"] != before["panels"]["site-1"]["mass"]
    assert abs(after["height"] - before["height"]) <= 2, (before["height"], after["height"])
    assert after["panels"]["site-0"] == before["panels"]["site-0"]            # the other head untouched
    # the pick stays while the pixel moves
    st = _select(page, data, *CELLS[1])
    cc = context_maps(caches["toycity-cc"], (CELLS[1][0] * data.output_stride, CELLS[1][1] * data.output_stride))
    _check(st["panels"]["site-1"], cc[1], data)
    page.screenshot(path=str(shots / "heads_explorer_cc_pass1.png"), full_page=True)
    assert json.loads(page.locator("[data-panel=site-0]").get_attribute("data-mass"))


def test_a_model_without_ocr_opens_by_its_own_sites(browser, tmp_path, shots):
    """Explorer(toycity-sa, image): no OCR panel, the SA map is site-0 and its strip counts by
    toycity-sa's own argmax at feature resolution (ocrviz.context.cell_classes)."""
    from ocrviz.context import cell_classes
    from ocrviz.data.toycity import make_scene
    from ocrviz.normalisation import input_normalisation, normalise
    from ocrviz.widgets import Explorer

    scene = make_scene(3, 256, 512)
    sa = ocrviz.load_model("toycity-sa")
    ex = Explorer(sa, scene.image, scene.labels, selected=[9, 50])
    path = ex.save_html(tmp_path / "sa.html")
    _, cache = ocrviz.run_with_cache(sa, normalise(scene.image, *input_normalisation(sa)))
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, offline=True)
    page = ctx.new_page()
    page.goto(path.as_uri())
    page.wait_for_selector("#ocrviz-root[data-ready=true]", timeout=60_000)
    st = read_state(page.locator(".ocrviz-explorer"))
    assert list(st["panels"]) == ["site-0"] and st["regions"] == []
    (m,) = context_maps(cache, (9 * 8, 50 * 8))
    mass = m.mass_by_class(cell_classes(cache).astype(np.int64), ex.data.class_names)
    np.testing.assert_allclose([st["panels"]["site-0"]["mass"][k] for k in mass], list(mass.values()), atol=2e-6)
    assert float(st["panels"]["site-0"]["vmax"]) == pytest.approx(m.weights.max(), rel=1e-5)
    assert "toycity-sa predicts" in page.locator(".ocrviz-info").text_content()
    page.screenshot(path=str(shots / "heads_explorer_sa_alone.png"), full_page=True)
    ctx.close()


def test_danet_page_says_cam_has_no_spatial_map(browser, tmp_path, shots):
    """Explorer(toycity-da, image): the PAM panel shows, as one plain sentence under its legend, the note
    context_maps gives its map (CAM mixes channels, never pixels); the strip is still the PAM row's."""
    from ocrviz.context import cell_classes
    from ocrviz.data.toycity import make_scene
    from ocrviz.normalisation import input_normalisation, normalise
    from ocrviz.widgets import Explorer

    scene = make_scene(3, 256, 512)
    da = ocrviz.load_model("toycity-da")
    ex = Explorer(da, scene.image, scene.labels, selected=[9, 50])
    path = ex.save_html(tmp_path / "da.html")
    _, cache = ocrviz.run_with_cache(da, normalise(scene.image, *input_normalisation(da)))
    (m,) = context_maps(cache, (9 * 8, 50 * 8))
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, offline=True)
    page = ctx.new_page()
    page.goto(path.as_uri())
    page.wait_for_selector("#ocrviz-root[data-ready=true]", timeout=60_000)
    panel = page.locator("[data-panel=site-0]")
    assert panel.get_attribute("data-note") == m.extra["note"]
    said = panel.locator(".ocrviz-site-note")
    assert said.is_visible() and said.text_content() == m.extra["note"] + "."
    assert "CAM" in said.text_content() and "no spatial context map" in said.text_content()
    st = read_state(page.locator(".ocrviz-explorer"))
    mass = m.mass_by_class(cell_classes(cache).astype(np.int64), ex.data.class_names)
    np.testing.assert_allclose([st["panels"]["site-0"]["mass"][k] for k in mass], list(mass.values()), atol=2e-6)
    page.screenshot(path=str(shots / "heads_explorer_da_note.png"), full_page=True)
    ctx.close()


def test_saved_page_keeps_the_picked_site(browser, tmp_path, shots):
    """Explorer(toycity-cc) with its picker on the second pass (``site_pick``), saved: the page opens on
    that pass (picker value, data-site) and its strip is that pass's map from context_maps."""
    from ocrviz.context import cell_classes
    from ocrviz.data.toycity import make_scene
    from ocrviz.normalisation import input_normalisation, normalise
    from ocrviz.widgets import Explorer

    scene = make_scene(3, 256, 512)
    cc = ocrviz.load_model("toycity-cc")
    ex = Explorer(cc, scene.image, scene.labels, selected=[9, 50])
    ex.site_pick = [1]
    path = ex.save_html(tmp_path / "cc.html")
    _, cache = ocrviz.run_with_cache(cc, normalise(scene.image, *input_normalisation(cc)))
    want = context_maps(cache, (9 * 8, 50 * 8))[1]
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, offline=True)
    page = ctx.new_page()
    page.goto(path.as_uri())
    page.wait_for_selector("#ocrviz-root[data-ready=true]", timeout=60_000)
    panel = page.locator("[data-panel=site-0]")
    assert panel.get_attribute("data-site") == "1" and panel.get_attribute("data-site-name") == want.site
    assert panel.locator("select.ocrviz-site-pick").input_value() == "1"
    st = read_state(page.locator(".ocrviz-explorer"))
    mass = want.mass_by_class(cell_classes(cache).astype(np.int64), ex.data.class_names)
    np.testing.assert_allclose([st["panels"]["site-0"]["mass"][k] for k in mass], list(mass.values()), atol=2e-6)
    ctx.close()


def test_psp_page_draws_the_gradient_erf_beside_its_bins(browser, tmp_path, shots):
    """Explorer(toycity-psp, show_erf=True): the ERF computed on click travels into the saved page; the
    "erf" panel beside the bins map draws it, its strip and top colour those of gradient_erf_map (Captum)."""
    from ocrviz.context import cell_classes
    from ocrviz.context.erf import gradient_erf_map
    from ocrviz.data.toycity import make_scene
    from ocrviz.normalisation import input_normalisation, normalise
    from ocrviz.widgets import Explorer

    scene = make_scene(3, 256, 512)
    psp = ocrviz.load_model("toycity-psp")
    ex = Explorer(psp, scene.image, scene.labels, show_erf=True, selected=[9, 50])
    path = ex.save_html(tmp_path / "psp.html")
    x = normalise(scene.image, *input_normalisation(psp))
    _, cache = ocrviz.run_with_cache(psp, x)
    want = gradient_erf_map(psp, x, (9 * 8 + 4, 50 * 8 + 4))
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, offline=True)
    page = ctx.new_page()
    page.goto(path.as_uri())
    page.wait_for_selector("#ocrviz-root[data-ready=true]", timeout=60_000)
    st = read_state(page.locator(".ocrviz-explorer"))
    assert list(st["panels"]) == ["site-0", "erf"]
    assert st["panels"]["erf"]["why"] == ""
    mass = want.mass_by_class(cell_classes(cache).astype(np.int64), ex.data.class_names)
    np.testing.assert_allclose([st["panels"]["erf"]["mass"][k] for k in mass], list(mass.values()), atol=1e-5)
    assert float(st["panels"]["erf"]["vmax"]) == pytest.approx(want.weights.max(), rel=1e-2)
    assert "toycity-psp's effective receptive field" in page.locator("[data-panel=erf]").text_content()
    page.screenshot(path=str(shots / "heads_explorer_psp_erf.png"), full_page=True)
    ctx.close()


LAB_CELL = '''import json, numpy as np, torch, ocrviz
torch.set_num_threads(1)
from ocrviz.context import cell_classes, context_maps
from ocrviz.data.toycity import make_scene
from ocrviz.normalisation import input_normalisation, normalise
from ocrviz.widgets import Explorer
scene = make_scene(3, 256, 512)
sa = ocrviz.load_model("toycity-sa")
x = normalise(scene.image, *input_normalisation(sa))
_, sa_cache = ocrviz.run_with_cache(sa, x)
_, cc_cache = ocrviz.run_with_cache(ocrviz.load_model("toycity-cc"), x)
cls = cell_classes(sa_cache).astype(np.int64)
names = list(sa.class_names)
want = {}
for y, x_ in [(14, 40), (5, 9)]:
    (m,) = context_maps(sa_cache, (y * 8, x_ * 8))
    c = context_maps(cc_cache, (y * 8, x_ * 8))
    want[f"{y},{x_}"] = {"sa": [m.mass_by_class(cls, names), m.weights.max()],
                         "cc": [[p.mass_by_class(cls, names), p.weights.max()] for p in c[:2]]}
json.dump(want, open("heads_expected.json", "w"))
ex = Explorer(sa, scene.image, compare=["toycity-cc"], selected=[14, 40])
ex'''


def test_in_jupyterlab_sa_and_a_cc_pass(lab_server, browser, shots):
    """The widget in JupyterLab (the same data through the comm): toycity-sa and toycity-cc's passes,
    read back against context_maps computed in the notebook's kernel; the picker keeps the height."""
    import nbformat

    from lab_harness import run_notebook

    url, root = lab_server
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(LAB_CELL)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, str(root / "heads_explorer.ipynb"))
    page, _, _ = run_notebook(browser, url, "heads_explorer.ipynb", ".ocrviz-explorer[data-y]", 1, shots)
    want = json.loads((root / "heads_expected.json").read_text())
    root_el = page.locator(".ocrviz-explorer")

    def check(panel, mass_vmax):
        mass, vmax = mass_vmax
        np.testing.assert_allclose([panel["mass"][k] for k in mass], list(mass.values()), atol=2e-6)
        assert float(panel["vmax"]) == pytest.approx(vmax, rel=1e-5)

    st = read_state(root_el)
    check(st["panels"]["site-0"], want["14,40"]["sa"])
    check(st["panels"]["site-1"], want["14,40"]["cc"][0])
    page.locator("[data-panel=site-1] select.ocrviz-site-pick").select_option("1")
    page.wait_for_function("() => document.querySelector('[data-panel=site-1]').dataset.site === '1'")
    after = read_state(root_el)
    check(after["panels"]["site-1"], want["14,40"]["cc"][1])
    assert abs(after["height"] - st["height"]) <= 2
    page.screenshot(path=str(shots / "lab_heads_explorer.png"))
    assert page.errors == []
    page.close()


def test_in_jupyterlab_a_site_too_large_for_the_page_is_asked_of_the_kernel(lab_server, browser, shots):
    """The same heads with ``site_cells=1024`` (below their 32 x 64 grids): no maps travel with the
    widget; each click asks the kernel (site_rows) for the cell's map, and the panels draw the answers
    ("site-kernel"), read back against context_maps in the kernel, for a click and for the second pass."""
    import nbformat

    from lab_harness import run_notebook

    url, root = lab_server
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(LAB_CELL.replace("selected=[14, 40])", "selected=[14, 40], site_cells=1024)")
                                          .replace("heads_expected.json", "rows_expected.json"))]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, str(root / "site_rows.ipynb"))
    page, _, _ = run_notebook(browser, url, "site_rows.ipynb", ".ocrviz-explorer[data-y]", 1, shots)
    want = json.loads((root / "rows_expected.json").read_text())
    root_el = page.locator(".ocrviz-explorer")
    drawn = ("(c) => ['site-0', 'site-1'].every((p) => document.querySelector(`[data-panel=${p}] canvas`)"
             ".dataset.map === 'site-kernel' && document.querySelector(`[data-panel=${p}]`).dataset.siteCell === c)")

    def check(panel, mass_vmax):
        mass, vmax = mass_vmax
        np.testing.assert_allclose([panel["mass"][k] for k in mass], list(mass.values()), atol=2e-6)
        assert float(panel["vmax"]) == pytest.approx(vmax, rel=1e-5)

    page.wait_for_function(drawn, arg="14,40", timeout=20_000)
    st = read_state(root_el)
    assert page.locator("[data-panel=site-0]").get_attribute("data-on-demand") == "kernel"
    check(st["panels"]["site-0"], want["14,40"]["sa"])
    check(st["panels"]["site-1"], want["14,40"]["cc"][0])
    canvas = page.locator("canvas.ocrviz-image")
    canvas.click(position=cell_point(canvas, 5, 9, 8, (256, 512)))
    page.wait_for_function(drawn, arg="5,9", timeout=20_000)
    st = read_state(root_el)
    check(st["panels"]["site-0"], want["5,9"]["sa"])
    check(st["panels"]["site-1"], want["5,9"]["cc"][0])
    page.locator("[data-panel=site-1] select.ocrviz-site-pick").select_option("1")
    page.wait_for_function("() => { const p = document.querySelector('[data-panel=site-1]'); return p.dataset.site "
                           "=== '1' && p.querySelector('canvas').dataset.map === 'site-kernel'; }", timeout=20_000)
    check(read_state(root_el)["panels"]["site-1"], want["5,9"]["cc"][1])
    page.screenshot(path=str(shots / "lab_site_rows.png"))
    assert page.errors == []
    page.close()
