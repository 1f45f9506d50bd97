"""Explorer widget: click -> redraw latency and standalone export size; prints markdown tables.

    .venv/bin/python benchmarks/bench_widget.py [--clicks 31] [--no-lab]

Latency is measured in Chromium (Debian's, via Playwright) on the standalone
export (the same JS as in JupyterLab) and, unless ``--no-lab``, inside a real
JupyterLab.  Per click: the input event's own timestamp -> the view has
rewritten its DOM hooks (its panels are redrawn; ``data-y``/``data-x`` are
written last) -> the next animation frame (on screen).  "redraw" is the
view's own time in its draw function (``data-draw-ms``).  The first click
is discarded (JIT warm-up); median and p95 of the rest.
"""
from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "browser"))

from dom import cell_point, read_state, timed  # noqa: E402
from ocrviz.widgets import Explorer  # noqa: E402
from ocrviz.widgets.export import read_html_payload, save_html  # noqa: E402
from ocrviz.widgets.synthetic import synthetic_data  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
CONFIGS = [("16 x 32 cells, K=5", 16, 32, 5), ("64 x 128 cells, K=19", 64, 128, 19),
           ("128 x 256 cells, K=19", 128, 256, 19)]
MIB = 1024 * 1024


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def clicks_on(page, root, data, n: int, seed: int = 0) -> dict[str, list[float]]:
    """n clicks on random cells (after one pinning click); first discarded."""
    canvas = root.locator("canvas.ocrviz-image")
    canvas.scroll_into_view_if_needed()
    h, w = data.feat_hw
    canvas.click(position=cell_point(canvas, 0, 0, data.output_stride, data.image_hw))   # pin
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {"dom": [], "frame": [], "draw": []}
    prev = (0, 0)
    for _ in range(n):
        y, x = prev
        while (y, x) == prev:
            y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        prev = (y, x)
        pos = cell_point(canvas, y, x, data.output_stride, data.image_hw)
        t = timed(page, root, "mousedown", lambda: canvas.click(position=pos))
        st = read_state(root)
        assert (st["y"], st["x"]) == (y, x), ((st["y"], st["x"]), (y, x))
        out["dom"].append(t["dom_ms"])
        out["frame"].append(t["frame_ms"])
        out["draw"].append(st["drawMs"])
    return {k: v[1:] for k, v in out.items()}


def hovers_on(page, root, data, n: int) -> list[float]:
    canvas = root.locator("canvas.ocrviz-image")
    canvas.press("Escape")                                   # follow the mouse again
    rng = np.random.default_rng(1)
    h, w = data.feat_hw
    out = []
    for _ in range(n):
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        pos = cell_point(canvas, y, x, data.output_stride, data.image_hw)
        if (read_state(root)["y"], read_state(root)["x"]) == (y, x):
            continue
        out.append(timed(page, root, "mousemove", lambda: canvas.hover(position=pos))["dom_ms"])
    return out[1:]


def row(name: str, v: list[float]) -> str:
    return f"| {name} | {statistics.median(v):.1f} | {pct(v, 95):.1f} | {max(v):.1f} | {len(v)} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clicks", type=int, default=31)
    ap.add_argument("--no-lab", action="store_true", help="skip the JupyterLab measurement")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="ocrviz-bench-"))
    sizes, lat_rows = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for name, h, w, k in CONFIGS:
            data = synthetic_data(h=h, w=w, k=k, output_stride=8, seed=0)
            width = max(300, min(768, 3 * w))                  # >= 3 CSS px per cell, so clicks hit cells
            ex = Explorer.from_data(data, width=width)
            t0 = time.perf_counter()
            path = ex.save_html(tmp / f"{h}x{w}.html")
            t_export = time.perf_counter() - t0
            prec = read_html_payload(path)["_precision"]
            exact = save_html(data, tmp / f"{h}x{w}_f32.html", precision="float32")
            sizes.append(f"| {name} | {data.image.shape[0]} x {data.image.shape[1]} | "
                         f"{path.stat().st_size / MIB:.2f} | {prec['sim_map']} / {prec.get('aspp_shares', '-')} | "
                         f"{exact.stat().st_size / MIB:.2f} | {t_export:.2f} |")
            page = browser.new_page(viewport={"width": 1800, "height": 1000})
            t0 = time.perf_counter()
            page.goto(path.as_uri())
            page.wait_for_selector("#ocrviz-root[data-ready=true]", timeout=60_000)
            t_load = time.perf_counter() - t0
            root = page.locator(".ocrviz-explorer")
            c = clicks_on(page, root, data, args.clicks)
            hv = hovers_on(page, root, data, 15)
            lat_rows += [row(f"export, {name}: click -> panels redrawn", c["dom"]),
                         row(f"export, {name}: click -> next frame", c["frame"]),
                         row(f"export, {name}: redraw alone", c["draw"]),
                         row(f"export, {name}: hover -> panels redrawn*", hv)]
            sizes[-1] += f" {t_load:.2f} |"
            page.close()
        if not args.no_lab:
            from lab_harness import start_lab, stop_lab, wait_kernel_idle
            from make_nb import make_notebook

            nb = make_notebook(tmp / "lab" / "bench.ipynb")
            proc, url = start_lab(nb.parent, tmp / "labwork")
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{url}/lab/tree/{nb.name}?reset")
                page.wait_for_selector(".jp-Notebook", timeout=90_000)
                wait_kernel_idle(page)
                page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
                page.wait_for_selector(".ocrviz-explorer[data-y]", timeout=120_000)
                wait_kernel_idle(page)
                data = synthetic_data(h=16, w=32, k=5, output_stride=8, seed=0)
                c = clicks_on(page, page.locator(".ocrviz-explorer").first, data, args.clicks)
                lat_rows += [row("JupyterLab, 16 x 32 cells, K=5: click -> panels redrawn", c["dom"]),
                             row("JupyterLab, 16 x 32 cells, K=5: click -> next frame", c["frame"]),
                             row("JupyterLab, 16 x 32 cells, K=5: redraw alone", c["draw"])]
            finally:
                stop_lab(proc)
        version = browser.version
        browser.close()
    print(f"## Explorer latency (Chromium {version}, ms; first click discarded)\n")
    print("| measurement | median | p95 | max | n |\n| --- | --- | --- | --- | --- |")
    print("\n".join(lat_rows))
    print("\n*Chromium delivers mousemove once per animation frame, so hover's input -> DOM time includes "
          "up to one frame of queueing before the handler runs; the redraw lands in that same frame.\n")
    print("## Standalone export (synthetic data, stride 8, image downscaled to 1024 px wide)\n")
    print("| data | image | size MiB (auto) | numbers sim / shares | size MiB (float32) | export s | load s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(sizes))


if __name__ == "__main__":
    main()
