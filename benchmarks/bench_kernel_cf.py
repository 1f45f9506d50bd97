"""Counterfactuals answered in the kernel at HRNet-W48-OCR size: prints a markdown table.

    .venv/bin/python benchmarks/bench_kernel_cf.py [--image 1024x2048] [--threads 2] [--repeats 5] [--explorer]
                                                   [--lab 15]

An HRNet-W48-OCR head (official config: 512 mid channels, 256 key channels, K = 19, output
stride 4) does not fit the page (its pixel features at 1024 x 2048 are 256 MiB), so the explorer
re-runs edits in the kernel (``ocrviz.widgets.kernel_cf``).  The cost depends only on the
shapes, so the head is the real model's OCR head with BatchNorm folded (random weights, random
BN statistics) and the cache's value and pixel features are random.  Measured per request:
"pixel" = the cell's logits without / with the edit and K influences (K + 2 rows through the
head, float64) — what the page waits for after a click; "whole image" = the edit on every cell
(float32 torch) for the prediction overlay, the first time (with the unedited classes) and for
a further edit.  ``--explorer`` also builds ``ocrviz.Explorer`` on a real (random-weight)
HRNet-W48-OCR at that size and sends one edit through the widget's traits: which side the
counterfactuals run on, the time to build, the peak memory of the process, the answer times.
``--lab N`` times N bar clicks in a real JupyterLab (Chromium): the shipped toy model on street_0,
forced to the kernel path; from the click event to the pixel's numbers in the DOM (page, comm,
the 50 ms debounce, the answer, the redraw) and to the whole image's count.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from ocrviz.analysis.pixel_head import PixelHead, _conv_bn_relu
from ocrviz.analysis.counterfactual import ocr_parts
from ocrviz.models.hrnet import HRNetW48OCR
from ocrviz.widgets.kernel_cf import KernelCounterfactuals

STRIDE = 4


def head_of(k: int, hw: int, seed: int = 0) -> PixelHead:
    torch.manual_seed(seed)
    model = HRNetW48OCR(num_classes=k).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2)
    parts = ocr_parts(model)
    up_w, up_b = _conv_bn_relu(parts.up, "f_up")
    fuse_w, fuse_b = _conv_bn_relu(parts.fuse, "fuse")
    cls = parts.cls
    rng = np.random.default_rng(seed)
    c, ck = up_w.shape
    return PixelHead(value=rng.standard_normal((k, ck)), pixels=rng.standard_normal((hw, c)).astype(np.float32),
                     up_w=up_w, up_b=up_b, fuse_w=fuse_w, fuse_b=fuse_b,
                     cls_w=cls.weight.detach().double()[:, :, 0, 0].numpy(), cls_b=cls.bias.detach().double().numpy())


def ms(f, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        f(i)
        out.append(1000 * (time.perf_counter() - t0))
    return out


def explorer_run(H: int, W: int) -> None:
    import resource

    from ocrviz.widgets import Explorer

    torch.manual_seed(0)
    model = HRNetW48OCR(num_classes=19).eval()
    image = (np.random.default_rng(0).random((H, W, 3)) * 255).astype(np.uint8)
    t0 = time.perf_counter()
    ex = Explorer(model, image)
    built = time.perf_counter() - t0
    y, x = ex.data.feat_hw[0] // 2, ex.data.feat_hw[1] // 3
    top = int(np.argmax(ex.data.sim_map[y * ex.data.feat_hw[1] + x]))
    t0 = time.perf_counter()
    ex.cf_request = {"key": "b", "edit": "[[],null]", "cell": [y, x], "dropped": [], "gain": None}
    pixel = time.perf_counter() - t0
    t0 = time.perf_counter()
    ex.cf_request = {"key": "e", "edit": "d", "cell": [y, x], "dropped": [top], "gain": None}
    whole = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    print(f"\n_Explorer(HRNetW48OCR(num_classes=19), {H} x {W} image): counterfactuals = "
          f"{ex.counterfactuals!r}; built in {built:.1f} s; peak RSS {rss:.2f} GiB; a click's answer "
          f"{1000 * pixel:.0f} ms; an edit (pixel + whole image, first time) {1000 * whole:.0f} ms; "
          f"{ex.cf_answer['whole']['changed']} of {ex.cf_answer['whole']['cells']} cells change_")


# in the page: the click's event time, then the first time the view shows the kernel's logits / count
ARM_JS = """
(root) => {
  const t = root.__cf = {click: null, logits: null, whole: null};
  root.addEventListener('click', (ev) => { if (t.click === null) t.click = ev.timeStamp; }, {capture: true, once: true});
  const mo = new MutationObserver(() => {
    if (t.logits === null && root.dataset.cfLogits !== undefined && root.dataset.cfPending === undefined) t.logits = performance.now();
    if (t.whole === null && root.dataset.cfChanged !== undefined) { t.whole = performance.now(); mo.disconnect(); }
  });
  mo.observe(root, {attributes: true, subtree: true});
}
"""


def lab_round_trip(clicks: int) -> None:
    import pathlib
    import sys
    import tempfile

    import nbformat
    from playwright.sync_api import sync_playwright

    repo = pathlib.Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(repo / "tests" / "browser"))
    from lab_harness import run_notebook, start_lab, stop_lab

    root_dir = pathlib.Path(tempfile.mkdtemp(prefix="ocrviz-bench-lab-"))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import ocrviz\nfrom ocrviz.data.samples import load_sample\nsample = load_sample('street_0')\n"
        "explorer = ocrviz.Explorer(ocrviz.load_model('toycity-ocr'), sample.image, counterfactuals='kernel')\n"
        "explorer.select(14, 20)\nexplorer")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, str(root_dir / "bench.ipynb"))
    proc, url = start_lab(root_dir, root_dir / "lab")
    logits, whole = [], []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium",
                                         args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
            page, _, _ = run_notebook(browser, url, "bench.ipynb", ".ocrviz-explorer[data-y]", 1, root_dir)
            root = page.locator(".ocrviz-explorer").first
            idle = "(r) => r.dataset.cfPending === undefined && r.dataset.baseLogits !== undefined"
            for i in range(clicks + 1):
                page.wait_for_function(idle, arg=root.element_handle(), timeout=20_000)
                root.evaluate(ARM_JS)
                root.locator(f".ocrviz-region[data-k='{i % 9}']").click()
                page.wait_for_function("(r) => r.__cf.whole !== null", arg=root.element_handle(), timeout=20_000)
                t = root.evaluate("(r) => r.__cf")
                if i:                                                   # the first click discarded
                    logits.append(t["logits"] - t["click"])
                    whole.append(t["whole"] - t["click"])
                root.locator(".ocrviz-reset-btn").click()
            browser.close()
    finally:
        stop_lab(proc)
    print(f"\n_JupyterLab {clicks} bar clicks (toycity-ocr on street_0, forced to the kernel; debounce 50 ms)_\n")
    print("| bar click -> | median ms | max ms | n |")
    print("|---|---:|---:|---:|")
    for name, v in [("the kernel's logits shown", logits), ("the whole image's changed-cell count shown", whole)]:
        print(f"| {name} | {statistics.median(v):.1f} | {max(v):.1f} | {len(v)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image", default="1024x2048", help="H x W of the image (feature grid = image / 4)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--explorer", action="store_true", help="also an Explorer on a real HRNet-W48-OCR")
    ap.add_argument("--lab", type=int, default=0, metavar="N", help="also N bar clicks timed in JupyterLab")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    H, W = (int(v) for v in args.image.lower().split("x"))
    h, w, k = H // STRIDE, W // STRIDE, 19
    head = head_of(k, h * w)
    sim = np.random.default_rng(1).dirichlet(np.ones(k), h * w).astype(np.float32)      # HW x K
    kcf = KernelCounterfactuals(head, sim, (h, w))
    rng = np.random.default_rng(2)
    cells = [[int(rng.integers(h)), int(rng.integers(w))] for _ in range(64)]
    req = lambda i, d: {"key": str(i), "edit": str(d), "cell": cells[i % 64], "dropped": [d], "gain": None}  # noqa: E731
    pixel = ms(lambda i: kcf.pixel(req(i, i % k)), max(20, 4 * args.repeats))
    first = ms(lambda i: kcf.whole(req(i, 0)), 1)
    again = ms(lambda i: kcf.whole(req(i, 1 + i % (k - 1))), args.repeats)
    print(f"_HRNet-W48-OCR head (C = {head.up_b.size}, Ck = {head.value.shape[1]}, K = {k}), image {H} x {W} "
          f"= {h} x {w} cells; torch {torch.__version__}, {torch.get_num_threads()} threads_\n")
    print("| request | median ms | max ms | runs |")
    print("|---|---:|---:|---:|")
    for name, v in [("pixel: logits, edited logits, K influences (what a click waits for)", pixel),
                    ("whole image, first edit (and the unedited classes, once)", first),
                    ("whole image, a further edit", again)]:
        print(f"| {name} | {statistics.median(v):.1f} | {max(v):.1f} | {len(v)} |")
    if args.explorer:
        del kcf, head
        explorer_run(H, W)
    if args.lab:
        lab_round_trip(args.lab)


if __name__ == "__main__":
    main()
