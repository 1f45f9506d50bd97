"""Counterfactuals answered by the kernel, in a real JupyterLab: the page sends the edit, Python
re-runs the head (ocrviz.widgets.kernel_cf) and the DOM shows the numbers, which must equal a full
forward of the model in which a forward hook replaced the sim map by the same edited rows.

The explorer is forced to the kernel path (``counterfactuals="kernel"``) on the shipped toy
model: the path an HRNet-size model takes automatically (its head does not fit the page)."""
from __future__ import annotations

import json

import nbformat
import numpy as np
import pytest
import torch

from dom import cell_point, read_state
from lab_harness import run_notebook
from ocr_helpers import hooked_head_logits

pytestmark = pytest.mark.browser

SEED, H, W = 7, 128, 256
CELL = """\
import ocrviz
from ocrviz.data.toycity import make_scene
from ocrviz.widgets import Explorer

scene = make_scene(seed={seed}, height={h}, width={w})
explorer = Explorer(ocrviz.load_model("toycity-ocr"), scene.image, scene.labels, counterfactuals="kernel")
explorer
"""


@pytest.fixture(scope="module")
def reference():
    """The test's own capture of the same model and scene, and per edit a hooked forward (which
    rerun_head must equal too: the page's numbers are checked against both)."""
    import ocrviz
    from ocrviz.analysis import rerun_head
    from ocrviz.data.toycity import make_scene
    from ocrviz.widgets.explorer import _model_input

    model = ocrviz.load_model("toycity-ocr").eval()
    x = _model_input(make_scene(seed=SEED, height=H, width=W).image, None, None, None)
    with torch.no_grad():
        _, cache = ocrviz.run_with_cache(model, x)
    sim = cache["hook_sim_map"]                                               # 1 x HW x K

    def forward(dropped=(), gain=None):
        e = sim.clone().double()
        if gain is not None:
            e[..., gain[0]] *= gain[1]
        e[..., list(dropped)] = 0
        t = e.sum(-1, keepdim=True)
        e = torch.where(t > 0, e / t, sim.double()).float()
        hooked = hooked_head_logits(model, x, {"hook_sim_map": lambda out: e})[0]   # K x h x w
        torch.testing.assert_close(rerun_head(model, cache, sim_map=e)[0], hooked, rtol=0, atol=1e-5)
        return hooked
    return sim[0].numpy(), cache["hook_head_logits"][0], forward


@pytest.fixture(scope="module")
def page(lab_server, browser, shots):
    url, root = lab_server
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(CELL.format(seed=SEED, h=H, w=W)),
                nbformat.v4.new_code_cell("explorer   # a second view of the same widget: both ask the kernel")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, str(root / "kernel_cf.ipynb"))
    page, _, _ = run_notebook(browser, url, "kernel_cf.ipynb", ".ocrviz-explorer[data-y]", 2, shots)
    yield page
    assert not page.errors, page.errors
    page.close()


def _settled(page, root, what: str = "r.dataset.cfLogits !== undefined") -> None:
    page.wait_for_function(f"(r) => r.dataset.cfPending === undefined && {what}", arg=root.element_handle(),
                           timeout=20_000)


def test_kernel_counterfactuals_equal_hooked_forwards(page, reference, shots) -> None:
    sim, base_logits, forward = reference
    k, h, w = base_logits.shape
    root = page.locator(".ocrviz-explorer").first
    canvas = root.locator("canvas.ocrviz-image")
    y, x = 9, 20
    canvas.click(position=cell_point(canvas, y, x, 8, (H, W)))
    if read_state(root)["pinned"] != "true":
        canvas.click(position=cell_point(canvas, y, x, 8, (H, W)))
    assert (int(root.get_attribute("data-y")), int(root.get_attribute("data-x"))) == (y, x)
    assert root.get_attribute("data-cf-source") == "kernel"
    # the influence column arrives from the kernel: each region's drop of the predicted logit
    _settled(page, root, "[...r.querySelectorAll('.ocrviz-region')].every((e) => e.dataset.influence !== undefined)")
    base = json.loads(root.get_attribute("data-base-logits"))
    np.testing.assert_allclose(base, base_logits[:, y, x].numpy(), atol=1e-4)
    c = int(np.argmax(base))
    infl = {int(e.get_attribute("data-k")): float(e.get_attribute("data-influence"))
            for e in root.locator(".ocrviz-region").all()}
    for j in sorted(infl, key=lambda j: -sim[y * w + x, j])[:3]:
        want = float(base_logits[c, y, x] - forward([j])[c, y, x])
        assert abs(infl[j] - want) < 1e-4, (j, infl[j], want)
    # drop the top region: the pixel's logits and class, then the whole image's changed cells
    top = int(np.argmax(sim[y * w + x]))
    root.locator(f".ocrviz-region[data-k='{top}']").click()
    _settled(page, root, "r.dataset.cfLogits !== undefined && r.dataset.cfChanged !== undefined")
    want = forward([top])                                                      # K x h x w
    np.testing.assert_allclose(json.loads(root.get_attribute("data-cf-logits")), want[:, y, x].numpy(), atol=1e-4)
    assert int(root.get_attribute("data-cf-pred")) == int(want[:, y, x].argmax())
    moved = want.argmax(0) != base_logits.argmax(0)                            # h x w
    top2 = want.topk(2, 0).values
    ties = int(((top2[0] - top2[1]) < 1e-4).sum())
    assert abs(int(root.get_attribute("data-cf-changed")) - int(moved.sum())) <= ties
    assert "without" in root.locator(".ocrviz-cf").text_content()
    root.locator(".ocrviz-overlay-btn[data-overlay='prediction']").click()
    page.wait_for_timeout(200)
    root.screenshot(path=str(shots / "lab_kernel_counterfactual.png"))
    # the slider scales a region instead (undo first): x 3 on the second region
    root.locator(".ocrviz-reset-btn").click()
    _settled(page, root, "r.dataset.cfLogits === undefined")
    second = int(np.argsort(-sim[y * w + x])[1])
    root.locator(".ocrviz-gain-region").select_option(str(second))
    root.locator(".ocrviz-gain-slider").evaluate(
        "(s) => { s.value = '3'; s.dispatchEvent(new Event('input')); s.dispatchEvent(new Event('change')); }")
    _settled(page, root)
    want = forward((), (second, 3.0))
    np.testing.assert_allclose(json.loads(root.get_attribute("data-cf-logits")), want[:, y, x].numpy(), atol=1e-4)


def test_moving_the_pixel_under_an_edit_reanswers_that_pixel(page, reference) -> None:
    sim, base_logits, forward = reference
    root = page.locator(".ocrviz-explorer").first
    root.locator(".ocrviz-reset-btn").click()
    k, h, w = base_logits.shape
    y, x = 5, 7
    canvas = root.locator("canvas.ocrviz-image")
    canvas.click(position=cell_point(canvas, y, x, 8, (H, W)))
    if read_state(root)["pinned"] != "true":
        canvas.click(position=cell_point(canvas, y, x, 8, (H, W)))
    _settled(page, root, "r.dataset.baseLogits !== undefined && r.dataset.cfLogits === undefined")
    root.locator(".ocrviz-region[data-k='0']").click()                       # drop region 0
    _settled(page, root)
    page.keyboard.press("ArrowRight")                                        # the edit stays; the cell moves
    page.wait_for_function("(r) => r.dataset.x === '8'", arg=root.element_handle(), timeout=5_000)
    _settled(page, root)
    want = forward([0])
    np.testing.assert_allclose(json.loads(root.get_attribute("data-cf-logits")), want[:, y, x + 1].numpy(), atol=1e-4)
    np.testing.assert_allclose(json.loads(root.get_attribute("data-base-logits")), base_logits[:, y, x + 1].numpy(),
                               atol=1e-4)


def test_a_second_view_gets_its_own_answers(page, reference) -> None:
    """Two views of one widget share its request trait; each still gets the answer to its own edit
    (a view whose request was overtaken asks again)."""
    sim, base_logits, forward = reference
    k, h, w = base_logits.shape
    first, second = page.locator(".ocrviz-explorer").nth(0), page.locator(".ocrviz-explorer").nth(1)
    first.locator(".ocrviz-reset-btn").click()
    y, x = int(second.get_attribute("data-y")), int(second.get_attribute("data-x"))    # the shared selection
    top = int(np.argmax(sim[y * w + x]))
    second.scroll_into_view_if_needed()
    second.locator(f".ocrviz-region[data-k='{top}']").click()                 # an edit in the second view only
    _settled(page, second)
    np.testing.assert_allclose(json.loads(second.get_attribute("data-cf-logits")), forward([top])[:, y, x].numpy(),
                               atol=1e-4)
    first.scroll_into_view_if_needed()
    _settled(page, first, "r.dataset.baseLogits !== undefined && r.dataset.cfLogits === undefined")
    np.testing.assert_allclose(json.loads(first.get_attribute("data-base-logits")), base_logits[:, y, x].numpy(),
                               atol=1e-4)
