"""A notebook saved without widget state and reopened: under JupyterLab's "Error displaying widget:
model not found" the explorer says "run the cell again to bring the explorer back"; live, nothing extra.

The message itself is hard-coded in @jupyter-widgets/jupyterlab-manager's WidgetRenderer, whose mime
type outranks the output's others, so the explorer adds a second, hidden output whose CSS shows it only
right after such an error (Explorer._ipython_display_).
"""
from __future__ import annotations

import json
import time

import nbformat
import pytest
from nbformat.sign import NotebookNotary

from lab_harness import run_notebook, wait_kernel_idle

pytestmark = pytest.mark.browser

CELL = '''\
from ocrviz.widgets import Explorer
from ocrviz.widgets.synthetic import synthetic_data
Explorer.from_data(synthetic_data(h=6, w=10, k=4, output_stride=4, seed=0))
'''
NOTE = "run the cell again to bring the explorer back"


def test_reopened_without_widget_state_says_run_the_cell_again(lab_server, browser, shots) -> None:
    url, root = lab_server
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, root / "reopen_live.ipynb")
    page, _, _ = run_notebook(browser, url, "reopen_live.ipynb", ".ocrviz-explorer[data-y]", 1, shots)
    try:
        note = page.locator(".ocrviz-reopen")
        assert note.count() == 1 and not note.is_visible()                 # live: the explorer, no note
        assert page.locator(".ocrviz-explorer").is_visible()
        page.evaluate("window.jupyterapp.commands.execute('docmanager:save')")
        deadline = time.time() + 30
        while time.time() < deadline:
            saved = json.loads((root / "reopen_live.ipynb").read_text())
            outputs = saved["cells"][0].get("outputs", [])
            if len(outputs) == 2:
                break
            time.sleep(0.3)
        assert [sorted(o["data"]) for o in outputs] == [
            ["application/vnd.jupyter.widget-view+json", "text/plain"], ["text/html", "text/plain"]]
        assert NOTE in "".join(outputs[0]["data"]["text/plain"])
    finally:
        page.close()
    # the same file as saved without "Save widget state automatically": no widget state, a new kernel
    saved.get("metadata", {}).pop("widgets", None)
    cold = nbformat.reads(json.dumps(saved), as_version=4)
    NotebookNotary().sign(cold)                 # the user's own saved notebook is trusted
    nbformat.write(cold, root / "reopen_cold.ipynb")
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    try:
        page.goto(f"{url}/lab/tree/reopen_cold.ipynb?reset", wait_until="domcontentloaded")
        try:
            page.wait_for_selector("text=Error displaying widget: model not found", timeout=90_000)
        except Exception:
            page.screenshot(path=str(shots / "lab_reopen_failed.png"))
            raise AssertionError(page.evaluate(
                "() => [...document.querySelectorAll('.jp-OutputArea-child')].map(e => e.outerHTML.slice(0, 500))"))
        note = page.locator(".ocrviz-reopen")
        note.wait_for(state="visible", timeout=10_000)
        assert NOTE in note.inner_text()
        page.screenshot(path=str(shots / "lab_reopened_without_widget_state.png"))
        wait_kernel_idle(page)
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.wait_for_selector(".ocrviz-explorer[data-y]", timeout=120_000)
        assert page.locator(".ocrviz-reopen").count() == 1 and not page.locator(".ocrviz-reopen").is_visible()
        assert page.locator("text=model not found").count() == 0
    finally:
        page.close()


def test_the_note_stays_hidden_where_no_widget_failed() -> None:
    """Without the <style> (a sanitiser that drops it, VS Code, Colab) the note is hidden by its inline style;
    only the rule that follows JupyterLab's failed widget output shows it."""
    from ocrviz.widgets.explorer import REOPEN_HTML

    assert 'class="ocrviz-reopen" style="display:none;' in REOPEN_HTML
    assert ".jupyter-widgets) + .jp-OutputArea-child .ocrviz-reopen{display:block !important}" in REOPEN_HTML
    assert NOTE in REOPEN_HTML
