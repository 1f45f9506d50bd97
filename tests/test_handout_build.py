"""Handout building blocks without a kernel: fragments, widget replacement, plotly inline, no CDN.

(The handouts of real notebooks, in Chromium offline: tests/browser/test_handouts.py.)
"""
from __future__ import annotations

import re
import warnings

import nbformat
import pytest

from ocrviz.tools import handouts
from ocrviz.widgets import Explorer
from ocrviz.widgets.export import explorer_fragment, render_fragment
from ocrviz.widgets.synthetic import synthetic_data


@pytest.fixture(scope="module")
def small():
    return synthetic_data(h=8, w=16, k=5, output_stride=8, seed=3)


def test_fragments_share_a_page(small) -> None:
    a, b = render_fragment(small, uid="aa"), render_fragment(small, uid="bb")
    for uid, frag in (("aa", a), ("bb", b)):
        assert frag.startswith('<div class="ocrviz-fragment"') and frag.endswith("</div>")
        assert f'id="ocrviz-root-{uid}"' in frag and f'id="ocrviz-data-{uid}"' in frag
        assert f'document.getElementById("ocrviz-data-{uid}")' in frag
        assert f'document.getElementById("ocrviz-root-{uid}")' in frag
        assert 'id="ocrviz-root"' not in frag and "export default" not in frag
    assert render_fragment(small) != render_fragment(small)            # random uids
    with pytest.raises(ValueError, match="uid"):
        render_fragment(small, uid='x" onload="')


def test_explorer_fragment_keeps_the_view_state(small) -> None:
    ex = Explorer.from_data(small)
    ex.select(3, 7)
    ex.mode = "aspp"
    frag = explorer_fragment(ex, uid="s")
    assert '"selected":[3,7]' in frag and '"mode":"aspp"' in frag and '"pinned":true' in frag


def _nb_with(outputs):
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("# t\n\n$$ x^2 $$"))
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = outputs
    nb.cells.append(cell)
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2}}
    return nb


def test_widgets_become_fragments_or_notes_and_the_page_fetches_nothing(small) -> None:
    view = lambda mid: nbformat.v4.new_output("display_data", data={  # noqa: E731
        "text/plain": "W()", handouts.WIDGET_VIEW: {"model_id": mid, "version_major": 2, "version_minor": 0}})
    widgets = {"e1": {"kind": "explorer", "html": render_fragment(small, uid="e1")},
               "l1": {"kind": "other", "name": "Label"},
               "b1": {"kind": "box", "horizontal": True, "children": ["l1", "gone"]}}
    page = handouts.convert(handouts.prepare(_nb_with([view("e1"), view("l1"), view("b1"), view("zz")]), widgets),
                            title="t")
    assert page.count('class="ocrviz-fragment"') == 1 and "[Label widget: interactive only" in page
    assert page.count("interactive only in a running notebook") == 4       # label, box's label + lost one, zz
    assert handouts.WIDGET_VIEW not in page and "widget-state" not in page
    assert handouts.external_references(page) == []
    assert not re.search(r"<script[^>]*\ssrc\s*=", page) and "default-src 'none'" in page
    assert page.count("<math") == 1 and "$$" not in _markdown(page)          # TeX typeset as MathML


def test_plotly_figures_carry_plotly_js_once() -> None:
    go = pytest.importorskip("plotly.graph_objects")
    fig = go.Figure(go.Scatter(x=[0, 1], y=[1, 0])).to_plotly_json()
    out = lambda: nbformat.v4.new_output("display_data", data={  # noqa: E731
        "text/plain": "Figure", handouts.PLOTLY: fig, "text/html": '<script src="https://cdn.plot.ly/x.js"></script>'})
    page = handouts.convert(handouts.prepare(_nb_with([out(), out()]), {}), title="p")
    assert "cdn.plot.ly/x.js" not in page and handouts.external_references(page) == []
    assert page.count("Plotly.newPlot") == 2
    import plotly

    assert page.count(f"plotly.js v{plotly.offline.get_plotlyjs_version()}") == 1


def _markdown(page: str) -> str:
    """The rendered markdown cells of a handout page."""
    return "".join(re.findall(r'<div class="jp-RenderedHTMLCommon jp-RenderedMarkdown.*?</div>', page, re.S))


def test_formulas_become_mathml_and_no_tex_source_is_left() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell(
        "Inline $x^2$, then display:\n\n$$\\sum_k s_k$$\n\nCode keeps `$HOME` and a price stays \\$5."))
    with warnings.catch_warnings():
        warnings.simplefilter("error")                     # every formula converts
        md = _markdown(handouts.convert(nb, title="m"))
    inline, block = re.findall(r"<math\b[^>]*>.*?</math>", md, re.S)
    assert 'display="inline"' in inline and "<msup><mi>x</mi><mn>2</mn></msup>" in inline
    assert 'display="block"' in block and "<munder><mo>∑</mo><mi>k</mi></munder>" in block
    assert re.search(r"<msub><mi>s</mi><mi>k</mi></msub>", block)
    assert '<annotation encoding="application/x-tex">x^2</annotation>' in inline          # the source, not shown
    assert "\\sum_k s_k</annotation>" in block
    prose = re.sub(r"<math\b.*?</math>", "", md, flags=re.S)
    assert "<code>$HOME</code>" in prose and "price stays $5." in prose
    assert prose.count("$") == 2 and "x^2" not in prose and "sum_k" not in prose   # no formula left as TeX


def test_a_formula_latex2mathml_cannot_read_stays_tex_with_a_warning() -> None:
    with pytest.warns(UserWarning, match=r"notacommand.*kept as TeX"):
        out = handouts.tex_to_mathml("\\notacommand{x}", display=False)
    assert out == '<code class="ocrviz-tex">$\\notacommand{x}$</code>'
    with pytest.warns(UserWarning, match="kept as TeX"):
        assert handouts.tex_to_mathml("\\frac{1}{", display=True).startswith('<code class="ocrviz-tex">$$')


def test_course_notebook_formulas_all_convert() -> None:
    """Notebook 01's display formulas (a fraction, sums, an underbrace, \\text) as MathML, no warning."""
    nb = nbformat.read(handouts.REPO / "notebooks" / "01_ocr_in_three_steps.ipynb", as_version=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        md = _markdown(handouts.convert(nb, title="01"))
    assert md.count('<math display="block"') == 2 and "<mfrac>" in md and "<munder>" in md
    assert "$" not in re.sub(r"<math\b.*?</math>", "", md, flags=re.S)


def _details(page: str) -> list[str]:
    """The text inside each <details> element of a page, as the browser's HTML parser nests it."""
    from html.parser import HTMLParser

    class Collect(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.depth, self.found = 0, []

        def handle_starttag(self, tag, attrs) -> None:
            if tag == "details":
                self.depth += 1
                self.found.append("")

        def handle_endtag(self, tag) -> None:
            if tag == "details":
                self.depth -= 1

        def handle_data(self, data) -> None:
            if self.depth:
                self.found[-1] += data

    c = Collect()
    c.feed(page)
    return [" ".join(t.split()) for t in c.found]


def test_handout_of_03_keeps_every_answer_folded() -> None:
    """Notebook 03's seven answers each sit inside their <details> in the handout (nbconvert's image
    embedding used to close the element at once and print the answer after it, in the open)."""
    nb = nbformat.read(handouts.REPO / "notebooks" / "03_aspp_vs_ocr.ipynb", as_version=4)
    answers = [" ".join(a.split()) for c in nb.cells if c.cell_type == "markdown"
               for a in re.findall(r"<summary>Answer</summary>\s*(.*?)</details>", c.source, re.S)]
    assert len(answers) == 7, f"03 has {len(answers)} folded answers"
    page = handouts.convert(handouts.prepare(nb, {}), title="03")
    folded = _details(page)
    assert len(folded) == len(answers)
    words = lambda text: " ".join(re.findall(r"[A-Za-z0-9]+", text))   # noqa: E731  (markup aside)
    for inside, answer in zip(folded, answers):
        assert inside.startswith("Answer"), inside[:200]
        assert words(answer) in words(inside), (answer[:200], inside[:200])    # the whole answer, inside
    outside = re.sub(r"<details>.*?</details>", "", _markdown(page), flags=re.S)
    for answer in answers:                    # and nothing of it left in the open
        assert words(answer)[:60] not in words(re.sub(r"<[^>]+>", " ", outside))


def test_named_erf_cells_come_from_the_displaying_cells_metadata() -> None:
    view = lambda mid: nbformat.v4.new_output("display_data", data={  # noqa: E731
        "text/plain": "W()", handouts.WIDGET_VIEW: {"model_id": mid, "version_major": 2, "version_minor": 0}})
    nb = nbformat.v4.new_notebook()
    a, b = nbformat.v4.new_code_cell("a"), nbformat.v4.new_code_cell("b")
    a.outputs, b.outputs = [view("m1")], [view("m2")]
    a.metadata["ocrviz"] = {"erf_cells": [[13, 25], [30, 1]]}
    nb.cells += [a, b]
    assert handouts.named_erf_cells(nb) == {"m1": [[13, 25], [30, 1]]}


def test_labels_show_their_text_and_figure_widgets_their_figure() -> None:
    go = pytest.importorskip("plotly.graph_objects")
    view = lambda mid: nbformat.v4.new_output("display_data", data={  # noqa: E731
        "text/plain": "W()", handouts.WIDGET_VIEW: {"model_id": mid, "version_major": 2, "version_minor": 0}})
    fig = go.Figure(go.Heatmap(z=[[0, 1], [1, 0]])).to_plotly_json()
    widgets = {"l": {"kind": "text", "value": "selected: 3,4 <b>", "html": False},
               "f": {"kind": "plotly", "figure": fig}, "g": {"kind": "plotly", "figure": fig},
               "p": {"kind": "progress", "value": 3.0, "max": 3.0},
               "b": {"kind": "box", "horizontal": False, "children": ["f", "l", "p"]}}
    page = handouts.convert(handouts.prepare(_nb_with([view("b"), view("g")]), widgets), title="w")
    assert "selected: 3,4 &lt;b&gt;" in page and "interactive only" not in page
    assert re.search(r'<progress (max="3" value="3"|value="3" max="3")></progress>', page)
    assert page.count("Plotly.newPlot") == 2 and handouts.external_references(page) == []
    import plotly

    assert page.count(f"plotly.js v{plotly.offline.get_plotlyjs_version()}") == 1
