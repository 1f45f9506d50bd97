"""ASPP ERF per explorer click: Captum with a fresh forward vs one backward on the kept graph.

    .venv/bin/python benchmarks/bench_erf.py [--threads 2] [--clicks 5] [--quick]

Before (``gradient_erf``, Captum's Saliency): a no-grad forward to find the
predicted class, then a forward and a backward.  Now (``make_erf_fn``, what
the explorer calls): the forward graph of the shown image is kept after the
first click, the target is read from that output, and a click costs one
backward.  Both give the same map (tests/analysis/test_erf.py).  The shipped
ToyCity ASPP model, at 256 x 512 and 1024 x 2048; the first-click cost (the
kept forward) is its own column.  Median over ``--clicks`` cells.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from common import fmt_ms, machine_line, median, set_threads, time_ms

import ocrviz
from ocrviz.analysis.erf import gradient_erf, make_erf_fn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clicks", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one click (smoke test)")
    args = ap.parse_args()
    set_threads(args.threads)
    model = ocrviz.load_model("toycity-aspp")
    sizes = [(64, 128)] if args.quick else [(256, 512), (1024, 2048)]
    clicks = 1 if args.quick else args.clicks
    s = model.output_stride
    print(f"machine: {machine_line()}\n")
    print("| image | Captum, fresh forward (ms/click) | kept graph: first click (ms) | kept graph: later clicks (ms) | speed-up |")
    print("|---|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for hh, ww in sizes:
        x = torch.randn(1, 3, hh, ww)
        cells = [(int(rng.integers(0, hh // s)), int(rng.integers(0, ww // s))) for _ in range(clicks + 1)]
        old = [time_ms(lambda r=r, c=c: gradient_erf(model, x, r * s + s // 2, c * s + s // 2)) for r, c in cells[1:]]
        fn = make_erf_fn(model, x)
        first = time_ms(lambda: fn(*cells[0]))
        new = [time_ms(lambda r=r, c=c: fn(r, c)) for r, c in cells[1:]]
        print(f"| {hh} x {ww} | {fmt_ms(median(old))} | {fmt_ms(first)} | {fmt_ms(median(new))} | "
              f"{median(old) / median(new):.1f}x |")
        del fn


if __name__ == "__main__":
    main()
