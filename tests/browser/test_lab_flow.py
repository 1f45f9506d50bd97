"""Notebook 06's FlowExplorer in a real JupyterLab: clicking a context-flow matrix cell (plotly
FigureWidget) lists that cell's example pixels and opens the first in an explorer, selected and
pinned.  The examples must be the ones ``context_flow`` keeps, computed here independently of the
kernel."""
from __future__ import annotations

import re
import shutil

import pytest

from lab_harness import REPO, run_notebook

pytestmark = pytest.mark.browser

NOTEBOOK = REPO / "notebooks" / "06_does_the_attention_matter.ipynb"
# the output area of the code cell that displays the FlowExplorer
FLOW_CELL = "[...document.querySelectorAll('.jp-CodeCell')].find((c) => c.querySelector('.jp-InputArea')" \
            ".textContent.includes('FlowExplorer(flow'))"


@pytest.fixture(scope="module")
def flow():
    """The notebook's context flow, recomputed in the test process (same models, same scenes)."""
    import ocrviz
    from ocrviz.analysis import context_flow
    from ocrviz.data.dataset import val_split
    from ocrviz.data.toycity import make_scene

    scenes = [make_scene(seed=s) for s in val_split(12)][:6]
    return context_flow(ocrviz.load_model("toycity-ocr"), [s.image for s in scenes], [s.labels for s in scenes],
                        aspp_model=ocrviz.load_model("toycity-aspp"))


@pytest.fixture(scope="module")
def page(lab_server, browser, shots):
    url, root = lab_server
    shutil.copy(NOTEBOOK, root)
    page, _, _ = run_notebook(browser, url, NOTEBOOK.name, ".ocrviz-explorer[data-y]", 1, shots)
    page.wait_for_function(f"() => {FLOW_CELL}?.querySelector('.js-plotly-plot .nsewdrag')", timeout=60_000)
    yield page
    assert not page.errors, page.errors
    page.close()


def _cell_point(page, trace: int, t: int, s: int) -> dict[str, float]:
    """Page coordinates of matrix cell (true t, source s) of subplot ``trace`` (plotly's own axes)."""
    return page.evaluate(f"""() => {{
        const gd = {FLOW_CELL}.querySelector('.js-plotly-plot'), L = gd._fullLayout;
        gd.scrollIntoView({{block: 'center'}});
        const xa = L[{trace} ? 'xaxis{trace + 1}' : 'xaxis'], ya = L[{trace} ? 'yaxis{trace + 1}' : 'yaxis'];
        const box = gd.getBoundingClientRect();
        return {{x: box.left + xa._offset + xa.l2p({s}), y: box.top + ya._offset + ya.l2p({t})}};
    }}""")


def test_clicking_a_matrix_cell_opens_its_examples(page, flow, shots) -> None:
    names = list(flow.class_names)
    # an off-diagonal pair with several examples: "true t takes context from source s"
    (t, s), cells = max(((key, v) for key, v in flow.examples.items() if key[0] != key[1] and v),
                        key=lambda kv: (len(kv[1]), flow.ocr_mass[kv[0]]))
    for trace, (tt, ss) in [(0, (t, s)), (2, (t, t))]:        # OCR mass, then ASPP mass on the diagonal
        want = flow.examples[(tt, ss)]
        if not want:
            continue
        pt = _cell_point(page, trace, tt, ss)
        page.mouse.move(pt["x"], pt["y"])
        page.wait_for_timeout(300)                               # plotly's hover picks the point
        page.mouse.click(pt["x"], pt["y"])
        status = page.locator(".widget-html-content", has_text="example cells").last
        page.wait_for_function(f"() => [...document.querySelectorAll('.widget-html-content')].some((e) => "
                               f"e.textContent.includes('true {names[tt]} ← source {names[ss]}'))", timeout=30_000)
        text = status.text_content()
        m = re.search(r"(\d+) example cells; showing image (\d+), cell \((\d+), (\d+)\)", text)
        assert m, text
        assert int(m.group(1)) == len(want) and tuple(int(v) for v in m.groups()[1:]) == want[0]
        page.wait_for_function(
            f"() => {{ const r = {FLOW_CELL}.querySelector('.ocrviz-explorer[data-y]'); return r && "
            f"r.dataset.y === '{want[0][1]}' && r.dataset.x === '{want[0][2]}' && r.dataset.pinned === 'true'; }}",
            timeout=30_000)
        buttons = page.evaluate(f"() => [...{FLOW_CELL}.querySelectorAll('.jupyter-button')].map((b) => b.textContent)")
        assert buttons == [f"image {i}, cell ({r}, {c})" for i, r, c in want]
        assert page.evaluate(f"() => {FLOW_CELL}.querySelectorAll('.ocrviz-explorer').length") == 1   # replaced
    page.evaluate(f"() => {FLOW_CELL}.scrollIntoView()")
    page.wait_for_timeout(300)
    page.screenshot(path=str(shots / "lab_flow_explorer.png"))
