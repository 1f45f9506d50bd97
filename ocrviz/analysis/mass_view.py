"""The explorer's *mass view* of a context map, in numpy: where a pixel's context comes from, by class.

A density picture (the value per cell) can point to the wrong source: a large
uniform region has a low value per cell yet may hold most of the map's mass
(issue 16).  The mass view draws each source cell in the colour of the class
the model predicts there, with opacity

    (that class's share of the map's mass / the largest class share)
        x scaled(the cell's value, the peak value among the cells of that class)

so the class holding the most mass is the most opaque wherever its cells are
strong, however thinly it is spread.  This is ``massView`` of
ocrviz/widgets/js/context_panel.js with ``scaled`` of scales.js (``sqrt`` by
default, the explorer's ``scale`` trait; ``log`` spans 3 decades), drawn over
the image faded towards white (layers.js ``faded``), the canvas's alpha byte
included (``round(255 * opacity)``).

    >>> rgba = mass_view_rgba(ocr_map, cell_pred, PALETTE, CLASSES, mass=strip)   # doctest: +SKIP
    >>> ax.imshow(mass_view_image(sample.image, rgba))                            # doctest: +SKIP
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..context import mass_by_class
from ..context.types import ContextMap

SCALES = ("sqrt", "log", "linear")     # as ocrviz.widgets.explorer.SCALES
DEFAULT_SCALE = "sqrt"                 # the explorer's default ``scale``
LOG_DECADES = 3                        # scales.js LOG_DECADES: the log scale's bottom is 10^-3 of the top
FADE = 0.78                            # layers.js ``faded``: white at this opacity over the image


def scaled(values: np.ndarray, top: np.ndarray | float, scale: str = DEFAULT_SCALE) -> np.ndarray:
    """scales.js ``scaled``: each value in [0, 1] on a scale whose top is ``top`` (0 where value or top <= 0)."""
    if scale not in SCALES:
        raise ValueError(f"scale={scale!r}; allowed: {', '.join(SCALES)} (the explorer's scale option)")
    v, top = np.broadcast_arrays(np.asarray(values, np.float64), np.asarray(top, np.float64))
    ok = (v > 0) & (top > 0)
    r = np.where(ok, v / np.where(top > 0, top, 1.0), 0.0)
    if scale == "linear":
        t = r
    elif scale == "log":
        t = np.maximum(0.0, 1.0 + np.log10(np.where(ok, r, 1.0)) / LOG_DECADES)
    else:
        t = np.sqrt(r)
    return np.where(ok, np.minimum(t, 1.0), 0.0)


def _class_shares(weights: np.ndarray, cls: np.ndarray, class_names: Sequence[str],
                  context_map: ContextMap | None, mass: Mapping[str, float] | None) -> np.ndarray:
    """K: each class's mass (the strip's shares; any common factor cancels in the view)."""
    if mass is None:
        if context_map is None:
            raise ValueError("mass_view_rgba got a plain array and no `mass`: pass the map's class shares "
                             "({class name: share}, e.g. the strip's dict or ocrviz.context.mass_by_class), "
                             "or pass the ContextMap itself")
        mass = mass_by_class(context_map, cls, class_names)
    missing = [n for n in class_names if n not in mass]
    if missing:
        raise ValueError(f"mass has no share for {missing}; give one per class name "
                         f"(got keys {sorted(mass)})")
    shares = np.array([float(mass[n]) for n in class_names])               # K
    if not np.isfinite(shares).all() or (shares < 0).any():
        raise ValueError(f"class shares must be finite and >= 0; got {dict(zip(class_names, shares))}")
    return shares


def mass_view_rgba(context_map: ContextMap | np.ndarray, cell_classes: np.ndarray,
                   palette: Sequence[Sequence[int]], class_names: Sequence[str], *,
                   mass: Mapping[str, float] | None = None, scale: str = DEFAULT_SCALE) -> np.ndarray:
    """h x w x 4 RGBA in [0, 1]: each cell in its predicted class's colour, opacity as the module says.

    context_map: a ContextMap or an h x w array of values >= 0 (then give ``mass``).
    cell_classes: h x w predicted class per cell (``ocrviz.context.cell_classes``).
    palette: K RGB colours (0..255); class_names: K names, in class-id order.
    mass: {class name: share} (the mass strip's dict); default ``mass_by_class`` of the ContextMap.
    """
    cm = context_map if isinstance(context_map, ContextMap) else None
    weights = np.asarray(cm.weights if cm is not None else context_map, np.float64)
    cls = np.asarray(cell_classes)
    names = [str(n) for n in class_names]
    pal = np.asarray(palette, np.float64)
    if weights.ndim != 2 or cls.shape != weights.shape:
        raise ValueError(f"the map is {weights.shape} and cell_classes {cls.shape}; give two h x w arrays "
                         f"over the same feature grid")
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError("the map's values must be finite and >= 0 (a context map, an ERF: a distribution)")
    if cls.dtype.kind not in "iu" or (cls.size and (cls.min() < 0 or cls.max() >= len(names))):
        raise ValueError(f"cell_classes must be integer class ids in 0..{len(names) - 1}; got dtype {cls.dtype}")
    if pal.shape != (len(names), 3):
        raise ValueError(f"palette has shape {pal.shape}; give one RGB triple (0..255) per class ({len(names)})")
    shares = _class_shares(weights, cls, names, cm, mass)                  # K
    peak = np.zeros(len(names))
    np.maximum.at(peak, cls.ravel(), weights.ravel())                      # K: each class's peak cell value
    most = shares.max() if shares.size else 0.0
    strength = shares[cls] / most if most > 0 else np.zeros(cls.shape)     # h x w
    alpha = strength * scaled(weights, peak[cls], scale)                   # h x w
    rgba = np.empty(weights.shape + (4,))                                  # h x w x 4
    rgba[..., :3] = pal[cls] / 255.0
    rgba[..., 3] = np.floor(255.0 * alpha + 0.5) / 255.0                   # the canvas's alpha byte
    return rgba


def mass_view_image(image: np.ndarray, rgba: np.ndarray) -> np.ndarray:
    """H x W x 3 in [0, 1]: the uint8 image faded towards white with the h x w mass view on top.

    Pixel (y, x) shows cell (floor(y * h / H), floor(x * w / W)), as the explorer's canvas scales its
    h x w layer over the image (no smoothing)."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image has shape {img.shape}; give an H x W x 3 uint8 RGB image")
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"rgba has shape {rgba.shape}; give the h x w x 4 of mass_view_rgba")
    (height, width), (h, w) = img.shape[:2], rgba.shape[:2]
    rows, cols = np.arange(height) * h // height, np.arange(width) * w // width
    cells = rgba[np.ix_(rows, cols)]                                       # H x W x 4
    base = (1 - FADE) * img.astype(np.float64) / 255.0 + FADE              # H x W x 3, faded to white
    a = cells[..., 3:]
    return (1 - a) * base + a * cells[..., :3]
