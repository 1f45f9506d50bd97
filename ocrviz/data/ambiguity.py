"""Cue-free pixels: ambiguous pixels whose whole neighbourhood is ambiguous too.

A ToyCity pixel is *ambiguous* when its local appearance is shared by two
classes (``Scene.ambiguity`` codes, see ``toycity.AMBIGUITY_KINDS``).  Near a
kerb, a wheel or a facade edge, a convolution still sees the cue that decides
it.  A *cue-free* pixel sees none: every pixel in the (2r+1) x (2r+1) window
around it carries the same ambiguity code.  ``r = CUE_FREE_RADIUS = 77`` at
256 x 512 is the measured reach of the shipped no-context FCN: the gradient
of its logit at any pixel is zero for every input pixel more than 77 px away
(the backbone's 111 px receptive field, the head's 3 x 3 conv at stride 8,
and the bilinear upsampling between cells; see tests/data/test_ambiguity.py).
So a model without a context module has nothing but the ambiguous surface
itself to go on there; only context from further away (ASPP's wide taps and
image pooling, or OCR's object regions) can decide it.

    >>> from ocrviz.data.toycity import make_scene
    >>> scene = make_scene(0)
    >>> mask = cue_free(scene.ambiguity)            # H x W bool, inside scene.ambiguous
"""
from __future__ import annotations

import numpy as np

# Half-width in pixels at 256 x 512: how far the shipped FCN's logit at a pixel
# reaches into the input (measured by autograd; tested).
CUE_FREE_RADIUS = 77


def cue_free(ambiguity: np.ndarray, radius: int = CUE_FREE_RADIUS) -> np.ndarray:
    """H x W ambiguity codes (0 = not ambiguous) -> H x W bool: pixels with code
    > 0 whose (2r+1)^2 window, clipped to the image, holds only their own code.

    Pixels near the image border count the border as no cue (zero padding is
    all a convolution sees there).  Example: ``cue_free(scene.ambiguity, 8)``.
    """
    amb = np.asarray(ambiguity)
    if amb.ndim != 2:
        raise ValueError(f"cue_free expects an H x W code map, got shape {amb.shape}; "
                         "pass scene.ambiguity of one scene")
    if not isinstance(radius, (int, np.integer)) or isinstance(radius, bool) or radius < 0:
        raise ValueError(f"radius must be a non-negative int (pixels), got {radius!r}")
    r = int(radius)
    h, w = amb.shape
    out = np.zeros(amb.shape, bool)
    top = int(amb.max()) if amb.size else 0
    codes = range(1, top + 1) if amb.dtype.kind in "ub" and top <= 16 else np.unique(amb[amb > 0])
    least = min(r + 1, h) * min(r + 1, w)          # the smallest clipped window (a corner's)
    for code in codes:
        mine = amb == code
        if np.count_nonzero(mine) < least:          # too few pixels to fill any window
            continue
        # only the code's bounding box, plus one row / column of cue around it where it is not the
        # image border: a window that reaches further out reaches that cue first
        rows, cols = np.flatnonzero(mine.any(1)), np.flatnonzero(mine.any(0))
        box = np.s_[max(rows[0] - 1, 0):rows[-1] + 2, max(cols[0] - 1, 0):cols[-1] + 2]
        sub = mine[box]
        seen = _any_within(_any_within(~sub, r, 1), r, 0)     # a cue in the window (separable)
        out[box] |= sub & ~seen
    return out


def _any_within(x: np.ndarray, r: int, axis: int) -> np.ndarray:
    """bool x -> bool: whether x holds a True within r steps along ``axis`` (clipped to the array).

    x padded by r False on both sides, then a dilation by doubling: after k steps d[i] says
    whether padded[i : i + 2**k] holds a True (one OR of two shifted slices per step), and the
    window of 2r + 1 is the OR of two such spans that overlap.  Exact (booleans only); a few
    fast ORs instead of a running count (numpy's cumsum is not vectorised)."""
    n = x.shape[axis]

    def span(a: int, b: int) -> tuple:                     # [a, b) along axis
        idx = [slice(None)] * x.ndim
        idx[axis] = slice(a, b)
        return tuple(idx)

    shape = list(x.shape)
    shape[axis] = n + 2 * r
    d = np.zeros(shape, bool)
    d[span(r, r + n)] = x
    size, full, valid = 1, 2 * r + 1, n + 2 * r             # d[i] = any(padded[i : i + size])
    while 2 * size <= full:
        valid -= size
        d = d[span(0, valid)] | d[span(size, size + valid)]
        size *= 2
    if size == full:
        return d[span(0, n)]
    return d[span(0, n)] | d[span(full - size, full - size + n)]
