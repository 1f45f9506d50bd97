"""The ``ocrviz report`` page and the explain page it links, in Chromium with every request logged.

The report page must fetch nothing (no script, no font, no image from
anywhere: its figures are inline SVG), draw its figures at a readable size,
and its link to a worst image must open an explain page whose explorer
renders offline.
"""
from __future__ import annotations

import re

import pytest

from ocrviz.cli import main

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report_page")
    argv = ["report", "toycity", "--model", "toycity-ocr", "--model", "toycity-aspp", "--images", "3",
            "--height", "64", "--width", "128", "--quiet", "--bootstrap", "200", "--explain-worst", "1",
            "-o", str(out / "report.html")]
    assert main(argv) == 0
    return out / "report.html"


def _open(browser, path, viewport=(1400, 1000)):
    ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, offline=True)
    page = ctx.new_page()
    page.requests, page.errors = [], []
    page.on("request", lambda r: page.requests.append(r.url))
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.goto(path.as_uri())
    return ctx, page


def test_report_page_fetches_nothing_and_draws_its_figures(browser, report, shots) -> None:
    ctx, page = _open(browser, report)
    try:
        page.wait_for_load_state("load")
        assert page.requests == [report.as_uri()], page.requests        # the page itself, nothing else
        assert not page.errors, page.errors
        sizes = page.eval_on_selector_all("svg.fig", "els => els.map(e => [e.getBoundingClientRect().width, "
                                                     "e.getBoundingClientRect().height])")
        assert len(sizes) >= 7 and all(w > 200 and h > 150 for w, h in sizes), sizes
        # the smallest text drawn in a figure is at least 10 px on screen
        smallest = page.eval_on_selector_all("svg.fig text", "els => Math.min(...els.map(e => "
                                                             "e.getBoundingClientRect().height))")
        assert smallest >= 10, smallest
        text = page.inner_text("body")
        assert "chance" in text and "(1/K)" in text and "Does the relation matter?" in text
        page.screenshot(path=str(shots / "report_page.png"), full_page=True)
        href = page.get_attribute("a[href$='.html']", "href")
    finally:
        ctx.close()
    sub = report.parent / href
    ctx, page = _open(browser, sub)
    try:
        page.wait_for_selector(".ocrviz-root[data-ready=true]", timeout=20_000)
        assert all(u.startswith("file:") or u.startswith("data:") or u.startswith("blob:") for u in page.requests), \
            page.requests
        assert not [u for u in page.requests if re.match(r"^https?://", u)]
        assert not page.errors, page.errors
        page.screenshot(path=str(shots / "report_explain_page.png"), full_page=True)
    finally:
        ctx.close()
