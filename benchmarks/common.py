"""Helpers shared by the benchmark scripts: timing, counting, markdown tables.

Not a test helper: every script imports this from its own folder
(``python benchmarks/bench_x.py`` puts ``benchmarks/`` on ``sys.path``).

* :func:`count_flops`: ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs =
  2 x multiply-adds of convolutions and matrix products; norms, softmax and
  pooling are not counted).  Works on the meta device, so full-size counts
  cost no arithmetic.
* :class:`PeakLiveTensors`: peak bytes of tensors created during a forward
  (activations; inputs and weights excluded, allocator workspaces not seen).
  Also works on the meta device.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads when given; return the number in use."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def machine_line() -> str:
    """One line naming the machine: CPU, logical CPUs, torch version, threads."""
    cpu = platform.processor() or platform.machine()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{cpu}, {os.cpu_count()} logical CPUs ({usable} usable), torch {torch.__version__}, "
            f"{torch.get_num_threads()} intra-op threads")


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def p90(xs: Sequence[float]) -> float:
    """90th percentile, nearest rank (the largest value for fewer than 10 samples)."""
    s = sorted(xs)
    return float(s[min(len(s) - 1, max(0, -(-9 * len(s) // 10) - 1))])


def fmt_ms(ms: float) -> str:
    """Milliseconds with two decimals below 10 ms, one above (ratios of small times stay readable)."""
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}"


def time_ms(fn: Callable[[], Any]) -> float:
    """Wall time of one call in milliseconds."""
    t0 = time.perf_counter()
    fn()
    return 1000.0 * (time.perf_counter() - t0)


def time_median_ms(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median wall time (ms) of ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    return median([time_ms(fn) for _ in range(max(1, repeats))])


def count_params(*modules: nn.Module) -> int:
    """Parameters (not buffers) of the given modules, each counted once."""
    seen: dict[int, int] = {}
    for m in modules:
        for p in m.parameters():
            seen[id(p)] = p.numel()
    return sum(seen.values())


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of ``fn()`` as FlopCounterMode counts them (2 x MACs), under no_grad."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn()
    return int(counter.get_total_flops())


class PeakLiveTensors(TorchDispatchMode):
    """Peak bytes of live tensor storages created inside the block.

    After every aten op the storages of its outputs are recorded (once each:
    views and in-place results share a storage) and storages that died are
    dropped; ``peak_bytes`` is the largest total seen.  Tensors created before
    the block (input, weights) are not counted.  Works for meta tensors,
    whose storages have a size but no memory.

    Example::

        with PeakLiveTensors() as mem, torch.no_grad():
            head(x)
        mem.peak_bytes
    """

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.peak_bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        out = func(*args, **(kwargs or {}))
        # Sweep first: a new storage may reuse the address of one that died.
        for key in [k for k, (ref, _) in self._live.items() if ref.expired()]:
            del self._live[key]
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                if storage._cdata not in self._live:
                    self._live[storage._cdata] = (StorageWeakRef(storage), storage.nbytes())
        self.peak_bytes = max(self.peak_bytes, sum(n for _, n in self._live.values()))
        return out


def peak_live_bytes(fn: Callable[[], Any]) -> int:
    """:class:`PeakLiveTensors` peak of ``fn()`` under no_grad."""
    with PeakLiveTensors() as mem, torch.no_grad():
        fn()
    return mem.peak_bytes


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A markdown table; ``align`` is one of 'l'/'r' per column (default: first left, rest right)."""
    align = align or "l" + "r" * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
