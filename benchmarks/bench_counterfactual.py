"""Explorer at its default (responsive) size with the shipped OCR model: pixel clicks and
counterfactual bar clicks, input -> redrawn, in Chromium; prints a markdown table.

    .venv/bin/python benchmarks/bench_counterfactual.py [--clicks 31]

The standalone export of ``toycity-ocr`` on the ``street_0`` sample (256 x 512, 32 x 64 cells,
K = 9), a 1400 x 900 window, no fixed width: the pictures fill the page at whole CSS px per
cell.  "pixel click" selects a random cell (ranked bars, influence of all K regions = K + 1
runs of the per-pixel head, context map).  "drop a region" clicks a bar: the pixel's sim row
without that region is re-run through OCR's head after the sim map (value, f_up, fuse conv,
cls_head) in the page, then everything is redrawn; right after, in its own task, the same edit
is re-run on every cell for the prediction overlay.  Per click: the input event's timestamp ->
the view's DOM hooks rewritten -> the next animation frame.  First click discarded.
"""
from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import tempfile

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "browser"))

from dom import cell_point, read_state, timed  # noqa: E402

import ocrviz  # noqa: E402
from ocrviz.data.samples import load_sample  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def row(name: str, v: list[float]) -> str:
    return f"| {name} | {statistics.median(v):.1f} | {float(np.percentile(v, 95)):.1f} | {max(v):.1f} | {len(v)} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clicks", type=int, default=31)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    sample = load_sample("street_0")
    ex = ocrviz.Explorer(ocrviz.load_model("toycity-ocr"), sample.image, sample.labels)
    path = ex.save_html(pathlib.Path(tempfile.mkdtemp(prefix="ocrviz-bench-")) / "cf.html")
    h, w = ex.data.feat_hw
    rng = np.random.default_rng(0)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(path.as_uri())
        page.wait_for_selector("#ocrviz-root[data-ready=true]", timeout=60_000)
        root = page.locator(".ocrviz-explorer")
        canvas = root.locator("canvas.ocrviz-image")
        cell_px = root.get_attribute("data-cell-px")
        canvas.click(position=cell_point(canvas, 0, 0, 8, ex.data.image_hw))          # pin
        pix, pix_frame, drop, drop_frame, draw, whole = [], [], [], [], [], []
        for _ in range(args.clicks):
            y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
            pos = cell_point(canvas, y, x, 8, ex.data.image_hw)
            t = timed(page, root, "mousedown", lambda: canvas.click(position=pos))
            if read_state(root)["pinned"] != "true":
                canvas.click(position=pos)
            pix.append(t["dom_ms"]); pix_frame.append(t["frame_ms"])
            k = int(rng.integers(0, ex.data.num_classes))
            bar = root.locator(f".ocrviz-region[data-k='{k}']")
            t = timed(page, root, "click", lambda: bar.click())
            drop.append(t["dom_ms"]); drop_frame.append(t["frame_ms"]); draw.append(read_state(root)["drawMs"])
            page.wait_for_function("(r) => r.dataset.cfChanged !== undefined", arg=root.element_handle())
            whole.append(float(root.get_attribute("data-whole-ms")))
            root.locator(".ocrviz-reset-btn").click()
        browser.close()
    print(f"Explorer on toycity-ocr / street_0 ({h} x {w} cells, K = {ex.data.num_classes}), default width in a "
          f"1400-px window: {cell_px} CSS px per cell.\n")
    print("| input | median ms | p95 ms | max ms | n |")
    print("|---|---:|---:|---:|---:|")
    for name, v in [("pixel click -> panels redrawn (incl. K influence re-runs)", pix[1:]),
                    ("pixel click -> next frame", pix_frame[1:]),
                    ("drop a region (bar click) -> prediction, logits, map redrawn", drop[1:]),
                    ("drop a region -> next frame", drop_frame[1:]),
                    ("drop a region: the view's redraw alone", draw[1:]),
                    ("then the same edit on all cells (own task, after the frame): re-run + redraw", whole[1:])]:
        print(row(name, v))


if __name__ == "__main__":
    main()
