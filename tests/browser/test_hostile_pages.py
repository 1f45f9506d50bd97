"""Hostile strings in Chromium (issue 15 W1, S3): the explorer still draws, later sections survive,
no injected element or script exists in the DOM."""
from __future__ import annotations

import dataclasses
import re

import pytest

from ocrviz.tools import handouts
from ocrviz.widgets.export import render_fragment
from ocrviz.widgets.synthetic import synthetic_data

pytestmark = pytest.mark.browser
NAMES = ("<!--<script>", "</script><img id=injected src=x onerror=window.__pwned=1>", "a|b", "c")


def _open(browser, tmp_path, body: str):
    path = tmp_path / "page.html"
    path.write_text(f'<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" '
                    f'content="{handouts.CSP}"></head><body>{body}<section id="after">after</section></body></html>',
                    encoding="utf-8")
    ctx = browser.new_context(offline=True)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route(re.compile(r"^https?://"), lambda r: r.abort())
    page.goto(path.as_uri())
    return ctx, page, errors


def test_hostile_w1_class_name_with_comment_script_renders_in_chromium(browser, tmp_path) -> None:
    data = dataclasses.replace(synthetic_data(h=8, w=16, k=len(NAMES), output_stride=8, seed=2), class_names=NAMES)
    ctx, page, errors = _open(browser, tmp_path, render_fragment(data, uid="w1"))
    try:
        page.wait_for_selector("#ocrviz-root-w1[data-ready=true]", timeout=20_000)
        assert page.locator("#after").count() == 1                       # later sections did not vanish
        assert page.locator("#injected").count() == 0 and page.evaluate("window.__pwned") is None
        shown = page.evaluate("[...document.querySelectorAll('.ocrviz-region')].map((e) => e.dataset.name)")
        assert sorted(shown) == sorted(NAMES) and errors == []
    finally:
        ctx.close()


def test_hostile_s3_formula_script_does_not_run_in_chromium(browser, tmp_path) -> None:
    body = handouts.tex_to_mathml(r"\text{<script>window.__pwned=1</script>a<b}", display=True)
    ctx, page, errors = _open(browser, tmp_path, body)
    try:
        page.wait_for_selector("#after", state="attached")
        assert page.evaluate("window.__pwned") is None and page.locator("math script").count() == 0
        assert page.locator("mtext").first.text_content().replace("\u00a0", " ") == \
            "<script>window.__pwned=1</script>a<b"
    finally:
        ctx.close()
