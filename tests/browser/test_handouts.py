"""Notebook handouts (``make handouts``) of notebooks 02 and 03, offline in Chromium.

Each notebook is executed by ``ocrviz.tools.handouts`` into one standalone page
(<= 10 MB).  The page is opened with every http(s) request aborted and recorded;
every explorer in it must draw, answer hover and click (data-y / data-x and the
ranked bars change, the bars are the pixel's own sim-map row from the page's
data), and the page must make no network request and log no error.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from dom import cell_point, read_state
from ocrviz.tools import handouts
from ocrviz.widgets.export import read_html_payload

pytestmark = pytest.mark.browser

STEMS = {"02": "02_click_a_pixel", "03": "03_aspp_vs_ocr"}
LIMIT = 10 * 1000 * 1000
# 02 shows two independent explorers; 03 its live explorer and exercise 7's.
MIN_EXPLORERS = {"02": 2, "03": 2}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, handouts.Handout]:
    out = tmp_path_factory.mktemp("handouts")
    missing = [n for n in ("toycity-ocr", "toycity-aspp", "toycity-fcn")
               if not (handouts.REPO / "data" / "checkpoints" / f"{n}.safetensors").is_file()]
    if missing:
        pytest.fail(f"shipped checkpoints missing: {missing}; train them with `make models`")
    res = {}
    for key, stem in STEMS.items():
        res[key] = handouts.build(handouts.REPO / "notebooks" / f"{stem}.ipynb", out)
        print(f"\nhandout {stem}: {res[key].bytes / 1e6:.2f} MB, {res[key].explorers} explorer(s), "
              f"{res[key].seconds:.1f} s")
    return res


def _payloads(page_text: str, tmp: Path) -> dict[str, dict]:
    """Each fragment's data, decoded by the export's own reader (uid -> payload)."""
    out = {}
    for uid, blob in re.findall(r'<script[^>]*\sid="ocrviz-data-([\w-]+)"[^>]*>(.*?)</script>',
                                page_text, flags=re.S):
        fake = tmp / f"{uid}.html"
        fake.write_text(f'<script type="application/json" id="ocrviz-data">{blob}</script>')
        out[uid] = read_html_payload(fake)
    return out


def _sim(p: dict) -> np.ndarray:
    h, w = p["feat_hw"]
    sim = p["sim_map"]
    sim = np.frombuffer(sim, "<f4") if isinstance(sim, bytes) else sim
    return sim.reshape(h * w, p["num_classes"])


@pytest.mark.parametrize("key", sorted(STEMS))
def test_handout_is_one_small_self_contained_page(built, key) -> None:
    h = built[key]
    text = h.path.read_text(encoding="utf-8")
    assert h.bytes == len(text.encode()) <= LIMIT, f"{h.path.name}: {h.bytes / 1e6:.2f} MB"
    assert handouts.external_references(text) == []
    assert "default-src 'none'" in text
    assert not re.search(r"<script[^>]*\ssrc\s*=", text, flags=re.I)
    prose = re.sub(r"[A-Za-z0-9+/=]{100,}", "", text).lower()                 # not inside base64 data
    for cdn in ("require.js", "html-manager", "mathjax", "mermaid.esm", "unpkg", "cdnjs", "jsdelivr"):
        assert cdn not in prose, cdn
    assert "application/vnd.jupyter.widget-view+json" not in text        # every widget replaced
    assert text.count('class="ocrviz-fragment"') == h.explorers >= MIN_EXPLORERS[key]


@pytest.mark.parametrize("key", sorted(STEMS))
def test_every_explorer_works_offline(built, key, browser, shots, tmp_path) -> None:
    """Load with http(s) aborted and recorded; click / hover every explorer; no request, no error."""
    h = built[key]
    text = h.path.read_text(encoding="utf-8")
    payloads = _payloads(text, tmp_path)
    assert len(payloads) == h.explorers
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, offline=True)
    page = ctx.new_page()
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:", "blob:")) else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    def block(route):
        requests.append(route.request.url)
        route.abort()

    page.route(re.compile(r"^https?://"), block)
    try:
        page.goto(h.path.as_uri())
        page.wait_for_function("(n) => { const r = [...document.querySelectorAll('.ocrviz-root')];"
                               " return r.length === n && r.every((e) => e.dataset.ready === 'true'); }",
                               arg=h.explorers, timeout=60_000)
        page.mouse.wheel(0, 100_000)                                    # the whole page, to its end
        for i, (uid, p) in enumerate(payloads.items()):
            host = page.locator(f"#ocrviz-root-{uid}")
            root, canvas = host.locator(".ocrviz-explorer"), host.locator("canvas.ocrviz-image")
            root.scroll_into_view_if_needed()
            s, hw, (fh, fw) = p["output_stride"], tuple(p["image_hw"]), p["feat_hw"]
            sim = _sim(p)
            atol = {"float32": 1e-6, "fixed24": 1e-6, "fixed16": 2e-5}[p["_precision"]["sim_map"]] + 5e-7
            a, b = (fh // 4, fw // 5), (3 * fh // 4, 4 * fw // 5)

            def check(y, x):
                st = read_state(root)
                assert (st["y"], st["x"]) == (y, x), (uid, st["y"], st["x"])
                shown = sorted(st["regions"], key=lambda r: r["rank"])
                row = sim[y * fw + x]
                np.testing.assert_allclose([float(r["weight"]) for r in shown], np.sort(row)[::-1], atol=atol)
                assert shown[0]["k"] == int(np.argmax(row))
                return st, [(r["k"], r["weight"]) for r in shown]

            canvas.click(position=cell_point(canvas, *a, s, hw))           # click selects and pins
            st, bars_a = check(*a)
            assert st["pinned"] == "true"
            canvas.hover(position=cell_point(canvas, *b, s, hw))           # pinned: hover does not move it
            check(*a)
            canvas.press("Escape")                                          # follow the mouse again
            canvas.hover(position=cell_point(canvas, b[0], b[1] - 1, s, hw))
            canvas.hover(position=cell_point(canvas, *b, s, hw))
            st, bars_b = check(*b)
            assert st["pinned"] == "false"
            assert bars_a != bars_b, "the ranked bars did not change between pixels"
            if p.get("aspp_rates"):                                         # ASPP beside OCR, no mode toggle
                st = read_state(root)
                assert "aspp-context" in st["panels"] and st["taps"], "the ASPP panel drew no taps"
            if i == 0:
                page.screenshot(path=str(shots / f"handout_{key}.png"))
        page.mouse.wheel(0, 100_000)
        assert requests == [], requests
        assert errors == [], errors
    finally:
        ctx.close()


def test_formulas_are_typeset_offline_as_mathml(browser, shots, tmp_path) -> None:
    """Notebook 01's formulas (no MathJax offline) as MathML that Chromium lays out: the fraction's
    numerator above its denominator, sums with their index below, nothing fetched."""
    import nbformat

    nb = nbformat.read(handouts.REPO / "notebooks" / "01_ocr_in_three_steps.ipynb", as_version=4)
    path = tmp_path / "01_formulas.html"
    path.write_text(handouts.convert(nb, title="01"), encoding="utf-8")
    ctx = browser.new_context(viewport={"width": 1100, "height": 900}, offline=True)
    page = ctx.new_page()
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(path.as_uri())
        maths = page.locator("math")
        assert maths.count() == 2
        for i in range(2):
            m = maths.nth(i)
            m.scroll_into_view_if_needed()
            assert m.evaluate("(e) => getComputedStyle(e).display") == "block math"   # MathML layout, not text
            assert not m.locator("annotation").is_visible()                          # the TeX stays hidden
            box = m.bounding_box()
            assert box["height"] > 30 and box["width"] > 200, box
            m.locator("xpath=ancestor::div[contains(@class, 'jp-MarkdownOutput')]").screenshot(
                path=str(shots / f"handout_01_formula_{i}.png"))
        num, den = (maths.nth(0).locator("mfrac > *").nth(j).bounding_box() for j in (0, 1))
        assert num["y"] + num["height"] <= den["y"] + 1                             # stacked, not inline
        total, index = (maths.nth(0).locator("munder").first.locator(":scope > *").nth(j).bounding_box()
                        for j in (0, 1))
        assert index["y"] >= total["y"] + total["height"] - 1                       # sum_q: q under the sum
        assert requests == [] and errors == []
    finally:
        ctx.close()


@pytest.mark.parametrize("key", sorted(STEMS))
def test_aspp_erf_is_drawn_offline_for_the_starting_cell(built, key, browser, shots, tmp_path) -> None:
    """Each explorer's page data carries ASPP's ERF for the cell it starts on (and the cells the
    notebook names); offline, the ERF panel beside OCR's draws it (data-map = erf, a stated top
    value), not the "no ERF stored" sentence."""
    h = built[key]
    text = h.path.read_text(encoding="utf-8")
    payloads = _payloads(text, tmp_path)
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, offline=True)
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(h.path.as_uri())
        page.wait_for_function("(n) => [...document.querySelectorAll('.ocrviz-root')]"
                               ".filter((e) => e.dataset.ready === 'true').length === n", arg=h.explorers,
                               timeout=60_000)
        for i, (uid, p) in enumerate(payloads.items()):
            if not p.get("aspp_rates"):
                continue
            start = [int(v) for v in p["selected"]]
            stored = [[int(a), int(b)] for a, b in p["erf_cells"]]
            assert start in stored, (uid, start, stored)
            root = page.locator(f"#ocrviz-root-{uid} .ocrviz-explorer")
            root.scroll_into_view_if_needed()
            st = read_state(root)
            assert [st["y"], st["x"]] == start, (st["y"], st["x"], start)
            erf_panel = root.locator("[data-panel=aspp-erf]")
            assert erf_panel.is_visible(), "no ERF panel beside OCR's"
            ctx_canvas = erf_panel.locator("canvas.ocrviz-context")
            assert ctx_canvas.get_attribute("data-map") == "erf", "the ERF panel draws no ERF for the starting cell"
            assert ctx_canvas.get_attribute("data-vmax") not in (None, ""), "the ERF panel states no top value"
            mass = json.loads(erf_panel.get_attribute("data-mass"))
            assert abs(sum(mass.values()) - 1) < 1e-3, mass
            root.screenshot(path=str(shots / f"handout_{key}_erf_{i}.png"))
        assert errors == [], errors
    finally:
        ctx.close()


def test_handout_of_03_folds_every_answer(built) -> None:
    """The executed handout of 03: each of the seven answers inside its <details>."""
    text = built["03"].path.read_text(encoding="utf-8")
    folded = re.findall(r"<details>(.*?)</details>", text, flags=re.S)
    assert len(folded) == 7 and all(len(re.sub(r"<[^>]+>", "", f)) > 200 for f in folded), \
        [len(re.sub(r"<[^>]+>", "", f)) for f in folded]
