"""Hostile and broken input (issue 15, section 2): each item has its own test, named after it.

The page writers must keep data as data (S3, W1, U3, W4, C3), bad command-line input must give
one line on stderr and exit status 2 with nothing written (C1, C2, C4, C5, W3), the training
outputs must be written whole with ordinary file modes (C6), and images and Explorer arguments
must be refused with a message that says what was given and how to fix it (W5, U2, U4).
The checks are independent of the code under test: the standard library's HTML and XML parsers,
JSON, file modes from ``os.stat`` and the umask, real resource limits.
"""
from __future__ import annotations

import dataclasses
import html.parser
import json
import re
import warnings
import xml.etree.ElementTree as ET

import pytest

from ocrviz.tools import handouts
from ocrviz.widgets.export import read_html_payload, render_fragment, render_html, save_html
from ocrviz.widgets.synthetic import synthetic_data

HOSTILE_NAMES = ("<!--<script>", "</script><img src=http://evil.example/x.png onerror=alert(1)>",
                 "a|b", "line\u2028sep", "&amp; <b>bold</b>")


@pytest.fixture(scope="module")
def hostile_data():
    d = synthetic_data(h=8, w=16, k=len(HOSTILE_NAMES), output_stride=8, seed=1)
    return dataclasses.replace(d, class_names=HOSTILE_NAMES)


def _data_blocks(page: str) -> list[str]:
    """The raw text of each JSON data block, cut where an HTML tokenizer would end it at the earliest."""
    return re.findall(r'<script type="application/json" id="ocrviz-data[^"]*">(.*?)</script', page, re.S)


class _Elements(html.parser.HTMLParser):
    """Every element the standard library's HTML parser sees, with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append((tag, dict(attrs)))


def _elements(page: str) -> list[tuple[str, dict]]:
    p = _Elements()
    p.feed(page)
    p.close()
    return p.tags


# ---- S3: handout formulas ------------------------------------------------------------------

@pytest.mark.parametrize("tex, shown", [
    (r"\text{<script>alert(1)</script>}", "<script>alert(1)</script>"),
    (r"\text{a<b}", "a<b"),
    (r"\text{x & y > z}", "x & y > z"),
])
def test_hostile_s3_handout_formula_text_stays_text(tex, shown) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")                              # converted, not kept as TeX
        out = handouts.tex_to_mathml(tex, display=False)
    root = ET.fromstring(out)                                       # well-formed: the markup is not broken
    ns = "{http://www.w3.org/1998/Math/MathML}"
    tags = {el.tag.removeprefix(ns) for el in root.iter()}
    assert tags <= handouts.MATHML_TAGS and "script" not in tags
    mtext = "".join(el.text or "" for el in root.iter(ns + "mtext")).replace("\u00a0", " ")
    assert mtext == shown                                           # the text, shown as written
    page_tags = [t for t, _ in _elements(f"<p>{out}</p>")]
    assert "script" not in page_tags and "img" not in page_tags     # as the browser's tokenizer reads it


def test_hostile_s3_mathml_with_foreign_elements_or_handlers_is_refused() -> None:
    with pytest.raises(ValueError, match="not plain MathML"):
        handouts.safe_mathml('<math><mi onclick="x">a</mi></math>')
    assert handouts.safe_mathml("<math><mtext>1 <svg onload=x> 2</mtext></math>") == \
        "<math><mtext>1 &lt;svg onload=x&gt; 2</mtext></math>"


# ---- W1: data inlined in a <script> --------------------------------------------------------

def test_hostile_w1_script_data_escapes_lt(hostile_data, tmp_path) -> None:
    page = render_html(hostile_data, title="w1")
    blocks = _data_blocks(page)
    assert len(blocks) == 1 and "<" not in blocks[0] and ">" not in blocks[0]
    assert tuple(json.loads(blocks[0])["class_names"]) == HOSTILE_NAMES     # the same strings come back
    assert page.count("<script") == 2 and page.rstrip().endswith("</html>")
    frag = render_fragment(hostile_data, uid="f1")
    assert "<" not in _data_blocks(frag)[0]
    path = save_html(hostile_data, tmp_path / "w1.html")
    assert tuple(read_html_payload(path)["class_names"]) == HOSTILE_NAMES


# ---- U3: the handout builder's fetch check reads elements, not data ------------------------

def test_hostile_u3_handout_builds_with_img_tag_in_a_class_name(hostile_data) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("ex")
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        "text/plain": "Explorer()", handouts.WIDGET_VIEW: {"model_id": "e1", "version_major": 2, "version_minor": 0}})]
    nb.cells.append(cell)
    widgets = {"e1": {"kind": "explorer", "html": render_fragment(hostile_data, uid="e1")}}
    page = handouts.convert(handouts.prepare(nb, widgets), title="u3")        # no "would fetch"
    assert handouts.external_references(page) == []
    # the check still finds a real element that would fetch, and skips script text that only mentions one
    assert handouts.external_references('<p><img src="http://evil.example/x.png"></p>') == \
        ["http://evil.example/x.png"]
    assert handouts.external_references('<script type="application/json">{"a": "<img src=http://x/y>"}'
                                        "</script>") == []
