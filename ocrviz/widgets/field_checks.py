"""What ``ExplorerData`` accepts for its arrays, checked once: class maps (indices in range, 255 = ignore)
and distributions (non-negative, summing to 1 within float32 rounding), stored read-only."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

IGNORE = 255        # ground-truth label that means "not labelled"
SUM_TOL = 1e-3      # rows / maps must sum to 1 within this, or within a float32 sum's rounding (sum_tolerance)


def sum_tolerance(n_terms: int) -> float:
    """How far from 1 a float32 distribution over ``n_terms`` values may sum: ``SUM_TOL``, or the
    worst-case rounding of a float32 sum of that many terms (n * 2^-24) when larger, e.g. a spatial
    softmax over the 1 000 000 cells of an 8000 x 8000 image at stride 8 (measured off by 0.0024).

    >>> sum_tolerance(19), round(sum_tolerance(1_000_000), 4)
    (0.001, 0.0596)
    """
    return max(SUM_TOL, n_terms * 2.0 ** -24)


def readonly(a: np.ndarray) -> np.ndarray:
    """A contiguous read-only copy."""
    a = np.ascontiguousarray(a).copy()
    a.setflags(write=False)
    return a


def int_map(name: str, a: Any, shapes: Sequence[tuple[int, int]], k: int, allow_ignore: bool) -> np.ndarray:
    """A class map of one of ``shapes`` with values 0..k-1 (and ``IGNORE`` when allowed), as read-only uint8."""
    a = np.asarray(a)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name} has dtype {a.dtype}; expected integer class indices "
                         f"(take argmax over the class axis first)")
    if a.shape not in shapes:
        raise ValueError(f"{name} has shape {a.shape}; expected one of {list(shapes)} "
                         f"(feature grid h x w or image H x W, no batch axis)")
    ok = (a >= 0) & (a < k)
    if allow_ignore:
        ok |= a == IGNORE
    if not ok.all():
        bad = np.unique(a[~ok])[:5].tolist()
        allowed = f"0..{k - 1}" + (f" or {IGNORE} (ignore)" if allow_ignore else "")
        raise ValueError(f"{name} holds values {bad}; allowed are {allowed}")
    return readonly(a.astype(np.uint8))


def distribution(name: str, a: Any, shape: tuple[int, ...], axis: tuple[int, ...], what: str) -> np.ndarray:
    """Non-negative finite values of ``shape`` summing to 1 over ``axis`` (within ``sum_tolerance``), as
    read-only float32; else a ValueError naming ``name``, what was given and what is expected."""
    a = np.asarray(a)
    if a.dtype.kind not in "fiu":
        raise ValueError(f"{name} has dtype {a.dtype}; expected floats")
    if a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}; expected {shape}")
    a = a.astype(np.float32)
    if not np.isfinite(a).all() or (a < 0).any():
        raise ValueError(f"{name} has negative or non-finite values; expected probabilities ({what})")
    sums = a.sum(axis=axis, dtype=np.float64)
    worst = float(np.abs(sums - 1.0).max()) if sums.size else 0.0
    if worst > sum_tolerance(int(np.prod([a.shape[i] for i in axis]))):
        raise ValueError(f"{name} is not normalised: {what} must sum to 1, worst sum is off by {worst:.3g} "
                         f"(pass probabilities after the softmax, not logits)")
    return readonly(a)
