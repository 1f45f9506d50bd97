"""Own-object context shares checked against brute-force loops."""
from __future__ import annotations

import numpy as np

from ocrviz.analysis.context_share import (aspp_own_object_share, context_map, object_ids,
                                           ocr_own_object_share)


def _scene(rng: np.random.Generator, stride: int, h: int, w: int):
    labels = np.zeros((h * stride, w * stride), np.int64)
    labels[: 2 * stride] = 1                                 # "sky" band
    inst = np.zeros_like(labels)
    labels[3 * stride: 5 * stride + 3, 2 * stride: 6 * stride] = 2   # a "car", not cell-aligned
    inst[3 * stride: 5 * stride + 3, 2 * stride: 6 * stride] = 7
    labels[0, 0] = 255
    return labels, inst


def _brute_frac(ids, stride, h, w, q, obj):
    cell = ids[q[0] * stride:(q[0] + 1) * stride, q[1] * stride:(q[1] + 1) * stride]
    return float((cell == obj).mean())


def test_ocr_share_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    stride, h, w, k = 4, 7, 9, 3
    labels, inst = _scene(rng, stride, h, w)
    sim = rng.random((h * w, k)); sim /= sim.sum(1, keepdims=True)
    rw = rng.random((k, h, w)); rw /= rw.sum((1, 2), keepdims=True)
    got = ocr_own_object_share(sim, rw, labels, inst, stride)
    ids = object_ids(labels, inst)
    for p in [(0, 0), (3, 3), (4, 5), (6, 8), (1, 2)]:
        obj = ids[p[0] * stride + stride // 2, p[1] * stride + stride // 2]
        cmap = context_map(sim[p[0] * w + p[1]], rw)
        want = sum(cmap[i, j] * _brute_frac(ids, stride, h, w, (i, j), obj) for i in range(h) for j in range(w))
        assert np.isclose(got[p], want), (p, got[p], want)
    assert got.min() >= 0 and got.max() <= 1 + 1e-9


def test_aspp_share_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    stride, h, w, rates = 4, 7, 9, (1, 2, 3)
    labels, inst = _scene(rng, stride, h, w)
    shares = rng.random((h * w, 5)); shares /= shares.sum(1, keepdims=True)
    got = aspp_own_object_share(shares, rates, labels, inst, stride)
    ids = object_ids(labels, inst)
    frac = lambda q, obj: _brute_frac(ids, stride, h, w, q, obj) if (0 <= q[0] < h and 0 <= q[1] < w) else 0.0
    for p in [(0, 0), (3, 3), (4, 5), (6, 8)]:
        obj = ids[p[0] * stride + stride // 2, p[1] * stride + stride // 2]
        parts = [frac(p, obj)]
        for r in rates:
            parts.append(np.mean([frac((p[0] + dy * r, p[1] + dx * r), obj) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]))
        parts.append(np.mean([frac((i, j), obj) for i in range(h) for j in range(w)]))
        want = float(np.dot(shares[p[0] * w + p[1]], parts))
        assert np.isclose(got[p], want), (p, got[p], want)


def test_context_map_is_a_distribution() -> None:
    rng = np.random.default_rng(2)
    rw = rng.random((4, 5, 6)); rw /= rw.sum((1, 2), keepdims=True)
    row = rng.random(4); row /= row.sum()
    assert np.isclose(context_map(row, rw).sum(), 1.0)


def test_aspp_tap_map_agrees_with_the_vectorised_share() -> None:
    """Two independent paths (aspp_taps geometry vs dilated convolutions) give the same share."""
    from ocrviz.analysis.context_share import _object_fractions, aspp_tap_map

    rng = np.random.default_rng(4)
    stride, h, w, rates = 4, 7, 9, (1, 2, 3)
    labels, inst = _scene(rng, stride, h, w)
    shares = rng.random((h * w, 5)); shares /= shares.sum(1, keepdims=True)
    vectorised = aspp_own_object_share(shares, rates, labels, inst, stride)
    ids = object_ids(labels, inst)
    frac, centre = _object_fractions(ids, stride, (h, w))
    for r, c in [(0, 0), (3, 4), (6, 8), (2, 7)]:
        tap_map, off_grid = aspp_tap_map(r, c, shares[r * w + c], rates, stride, (h, w), labels.shape)
        assert np.isclose(tap_map.sum() + off_grid, 1.0)
        assert np.isclose((tap_map * frac[centre[r, c]]).sum(), vectorised[r, c])
