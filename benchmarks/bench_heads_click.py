"""Click -> redrawn per context head at ToyCity size (32 x 64 cells, 256 x 512 image); prints a markdown table.

    .venv/bin/python benchmarks/bench_heads_click.py [--clicks 31] [--heads toycity-sa,toycity-cc,...]

Each head opens in the explorer by itself (``Explorer(model, image)``: OCR's own panels for
toycity-ocr, the context-site panels of ``site_payload`` for the others: every cell's map of
every site in the page), plus one row with OCR beside self-attention and CCNet
(``compare=``).  Measured in Chromium on the standalone export (the same JS as in
JupyterLab), as bench_widget.py does: the input event's own timestamp -> the view's DOM hooks
rewritten (``dom``) -> the next animation frame (``frame``); ``draw`` is the view's own time in
its draw function.  First click discarded; median and p95 of the rest.  Also: the time to
build the page's data in Python (capture + every cell's map of every site) and the page's size.
Issue 18's target: click -> redrawn <= 16 ms.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "browser"))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_widget import CHROMIUM_ARGS, MIB, clicks_on, pct  # noqa: E402

HEADS = ["toycity-ocr", "toycity-sa", "toycity-cc", "toycity-psp", "toycity-da"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clicks", type=int, default=31)
    ap.add_argument("--heads", default=",".join(HEADS), help="comma-separated shipped names")
    ap.add_argument("--no-compare", action="store_true", help="skip the OCR + SA + CC row")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()

    import torch
    from playwright.sync_api import sync_playwright

    import ocrviz
    from ocrviz.data.toycity import make_scene
    from ocrviz.widgets import Explorer

    torch.set_num_threads(1)
    scene = make_scene(3, 256, 512)
    rows = [(name, name, []) for name in args.heads.split(",") if name]
    if not args.no_compare:
        rows.append(("toycity-ocr + sa + cc", "toycity-ocr", ["toycity-sa", "toycity-cc"]))
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench_heads_"))
    print("| explorer | panels | build (s) | page (MiB) | dom median / p95 (ms) | frame median / p95 (ms) "
          "| draw median (ms) |")
    print("|---|---|---|---|---|---|---|")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        for label, name, compare in rows:
            t0 = time.perf_counter()
            ex = Explorer(ocrviz.load_model(name), scene.image, compare=compare)
            build = time.perf_counter() - t0
            path = ex.save_html(tmp / f"{label.replace(' ', '_')}.html")
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(path.as_uri())
            page.wait_for_selector("#ocrviz-root[data-ready=true]", timeout=120_000)
            root = page.locator(".ocrviz-explorer")
            panels = root.evaluate("(r) => [...r.querySelectorAll('.ocrviz-panel-context')].map((e) => e.dataset.panel)")
            t = clicks_on(page, root, ex.data, max(2, args.clicks))
            page.close()
            med = lambda k: pct(t[k], 50)  # noqa: E731
            print(f"| {label} | {', '.join(panels)} | {build:.1f} | {path.stat().st_size / MIB:.1f} "
                  f"| {med('dom'):.1f} / {pct(t['dom'], 95):.1f} | {med('frame'):.1f} / {pct(t['frame'], 95):.1f} "
                  f"| {med('draw'):.2f} |", flush=True)
        browser.close()


if __name__ == "__main__":
    main()
