"""ToyCity generator throughput on one core; prints a markdown table.

The main figure is images per CPU-second of this (single-threaded) process,
so it holds on a busy machine; images per wall-second is shown beside it.

    .venv/bin/python benchmarks/bench_toycity.py [--seconds 3]

BLAS threads are limited to one and the process is pinned to one CPU (where
the OS allows), so the number is per core: a DataLoader with N workers gets
about N times as much.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"                                        # before numpy is imported

import argparse
import platform
import time

import numpy as np

from ocrviz.data.toycity import make_scene


def bench(height: int, width: int, seconds: float) -> tuple[float, float, float, float]:
    """-> (images per CPU-second, ms CPU per image, images per wall-second, ambiguous share).

    CPU time (time.process_time) is what one core spends, unaffected by other
    processes sharing the machine; wall time is shown beside it."""
    make_scene(0, height, width)                                  # warm caches
    n, amb = 0, 0.0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    while (cpu := time.process_time() - cpu0) < seconds or n < 5:
        amb += make_scene(1000 + n, height, width).ambiguous.mean()
        n += 1
    wall = time.perf_counter() - wall0
    return n / cpu, 1000 * cpu / n, n / wall, amb / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per size (default 3)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    print(f"ToyCity throughput, one core ({platform.processor() or platform.machine()}, numpy {np.__version__})\n")
    print("| size (H x W) | images / CPU-s | CPU ms / image | images / wall-s | ambiguous pixels |")
    print("|---|---:|---:|---:|---:|")
    for h, w in [(256, 512), (512, 1024)]:
        rate, ms, wall_rate, amb = bench(h, w, args.seconds)
        print(f"| {h} x {w} | {rate:.1f} | {ms:.1f} | {wall_rate:.1f} | {100 * amb:.0f}% |")


if __name__ == "__main__":
    main()
