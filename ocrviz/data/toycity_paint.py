"""ToyCity's paint kit: class ids and palettes, the canvas, and the two shared
painters behind the designed ambiguities (``paint_glass`` for car and
building windows, ``paint_panel`` for sign faces and posters).

Used by :mod:`ocrviz.data.toycity` (layout, street, facades) and
:mod:`ocrviz.data.toycity_things` (cars, persons, poles, signs, trees);
the public names are re-exported by ``ocrviz.data.toycity``.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

CLASSES: list[str] = ["road", "sidewalk", "building", "pole", "traffic sign",
                      "vegetation", "sky", "person", "car"]
PALETTE: list[tuple[int, int, int]] = [
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (153, 153, 153), (220, 220, 0),
    (107, 142, 35), (70, 130, 180), (220, 20, 60), (0, 0, 142)]
CITYSCAPES_TRAIN_IDS: list[int] = [0, 1, 2, 5, 7, 8, 10, 11, 13]
NUM_CLASSES = len(CLASSES)
IGNORE_INDEX = 255
THING_CLASSES: tuple[str, ...] = ("person", "car")
AMBIGUITY_KINDS: tuple[str, ...] = ("none", "window", "surface", "panel")
ROAD, SIDEWALK, BUILDING, POLE, SIGN, VEGETATION, SKY, PERSON, CAR = range(NUM_CLASSES)
WINDOW, SURFACE, PANEL = 1, 2, 3                   # ambiguity codes (index into AMBIGUITY_KINDS)

GLASS_COLOURS = np.array([[40, 55, 75], [62, 78, 94], [34, 42, 52], [70, 92, 112], [48, 70, 70]], np.float32)
PANEL_COLOURS = np.array([[200, 40, 40], [30, 80, 170], [230, 200, 30], [30, 130, 70], [230, 120, 20]], np.float32)
CAR_BODIES = np.array([[225, 225, 225], [150, 150, 155], [30, 30, 35], [150, 20, 25],
                        [25, 50, 120], [90, 110, 70], [200, 170, 50]], np.float32)


@lru_cache(maxsize=16)
def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """n_out x n_in linear interpolation weights (smooth upsampling of a coarse grid)."""
    pos = (np.arange(n_out, dtype=np.float32) + 0.5) / n_out * (n_in - 1)
    lo = np.minimum(pos.astype(np.int64), n_in - 2)
    frac = pos - lo
    m = np.zeros((n_out, n_in), np.float32)
    m[np.arange(n_out), lo] = 1 - frac
    m[np.arange(n_out), lo + 1] = frac
    return m


def smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """H x W low-frequency noise, unit-ish amplitude, features about ``cell`` px."""
    gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    return _interp_matrix(h, gh) @ grid @ _interp_matrix(w, gw).T  # H x W


def paint_glass(gu: np.ndarray, gv: np.ndarray, base: np.ndarray, hl: float) -> np.ndarray:
    """Window glass at window coords gu (0..1 across), gv (0..1 bottom-up) -> ... x 3.
    Shared by building and car windows: this IS the 'window' ambiguity."""
    shade = 0.72 + 0.5 * gv
    stripe = (np.abs(gu - 0.7 * gv - hl) < 0.09).astype(np.float32) * 45.0
    return shade[..., None] * base + stripe[..., None]


def paint_panel(gu: np.ndarray, gv: np.ndarray, colour: np.ndarray, edge: np.ndarray | None = None) -> np.ndarray:
    """Sign / poster face at panel coords -> ... x 3.  Shared: the 'panel' ambiguity.
    ``edge``: distance to the panel's outline in panel units (default: a rectangle)."""
    if edge is None:
        edge = np.minimum(np.minimum(gu, 1 - gu), np.minimum(gv, 1 - gv))
    out = np.broadcast_to(colour, gu.shape + (3,)).copy()
    out[edge < 0.1] = 235.0
    out[(gu - 0.5) ** 2 + (gv - 0.5) ** 2 < 0.03] = 25.0
    return out


# One pixel of a float32 H x W x 3 image as one 12-byte item: a masked copy of whole pixels
# (``pixels(img)[mask] = pixels(values)``) is several times faster than ``img[mask] = values``,
# which numpy does channel by channel; the bytes written are the same.
_PIXEL = np.dtype((np.void, 12))


def pixels(a: np.ndarray) -> np.ndarray:
    """A float32 ... x 3 array (last axis contiguous) -> a ... view of whole pixels.

    Values of another dtype are converted to float32 first (a copy, as numpy's own assignment
    would convert them); ``pixels(img)[mask] = pixels(colours)`` then writes the same bytes as
    ``img[mask] = colours``."""
    if a.dtype != np.float32 or a.strides[-1] != 4:
        a = np.ascontiguousarray(a, np.float32)
    return a.view(_PIXEL)[..., 0]


class Canvas:
    """Image, labels, instances and ambiguity codes painted together."""

    def __init__(self, h: int, w: int) -> None:
        self.img = np.zeros((h, w, 3), np.float32)
        self.lab = np.full((h, w), SKY, np.uint8)
        self.inst = np.zeros((h, w), np.int32)
        self.amb = np.zeros((h, w), np.uint8)
        self.next_id = 1

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def frame(self, x0: float, x1: float, y0: float, y1: float):
        """Clip a float box to the image; return slices and local coords u (0..1
        left-right, 1 x w) and t (0..1 bottom-up, h x 1), or None when empty."""
        h, w = self.lab.shape
        xa, xb = max(0, int(np.floor(x0))), min(w, int(np.ceil(x1)))
        ya, yb = max(0, int(np.floor(y0))), min(h, int(np.ceil(y1)))
        if xb <= xa or yb <= ya or x1 - x0 < 1.0 or y1 - y0 < 2.0:
            return None
        u = ((np.arange(xa, xb, dtype=np.float32) + 0.5 - x0) / (x1 - x0))[None, :]  # 1 x w
        t = ((y1 - np.arange(ya, yb, dtype=np.float32) - 0.5) / (y1 - y0))[:, None]  # h x 1
        return (slice(ya, yb), slice(xa, xb)), u, t

    def paint(self, reg, mask, colour, label: int, inst: int, amb=0) -> None:
        """Paint ``mask`` (h x w bool) inside region ``reg`` with colour (h x w x 3 or 3,, or
        K x 3: one colour per pixel of the mask, K of them in row-major order).  ``mask=None``
        paints the whole region (colour h x w x 3, or anything that broadcasts to it)."""
        colour = np.asarray(colour)
        if mask is None:
            self.img[reg] = colour
            self.lab[reg], self.inst[reg], self.amb[reg] = label, inst, amb
            return
        dst = pixels(self.img[reg])
        if colour.ndim == 1:
            dst[mask] = pixels(colour)
        elif colour.ndim == 2:
            dst[mask] = pixels(colour)
        else:
            dst[mask] = pixels(np.broadcast_to(colour, mask.shape + (3,)))[mask]
        self.lab[reg][mask] = label
        self.inst[reg][mask] = inst
        self.amb[reg][mask] = np.broadcast_to(np.asarray(amb, np.uint8), mask.shape)[mask]
