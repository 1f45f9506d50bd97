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
    out = np.zeros(amb.shape, bool)
    for code in np.unique(amb[amb > 0]):
        other = (amb != code).astype(np.int32)                      # H x W: 1 where a cue could be
        out |= (amb == code) & (_window_sum(other, int(radius)) == 0)
    return out


def _window_sum(x: np.ndarray, r: int) -> np.ndarray:
    """Sum of x over each (2r+1) x (2r+1) window clipped to the image (integral image)."""
    h, w = x.shape
    c = np.zeros((h + 1, w + 1), np.int64)
    c[1:, 1:] = x.cumsum(0).cumsum(1)                               # (H+1) x (W+1)
    y0, y1 = np.clip(np.arange(h) - r, 0, h), np.clip(np.arange(h) + r + 1, 0, h)
    x0, x1 = np.clip(np.arange(w) - r, 0, w), np.clip(np.arange(w) + r + 1, 0, w)
    return c[y1][:, x1] - c[y0][:, x1] - c[y1][:, x0] + c[y0][:, x0]
