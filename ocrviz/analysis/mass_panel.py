"""One mass-view panel in matplotlib, as the notebooks draw a pixel's context map.

The explorer's mass view (:mod:`ocrviz.analysis.mass_view`) over the faded
image, the pixel's cell outlined (black under white, as the explorer outlines
it), the panel's mass strip under it (``ocrviz.context.strip_text``, broken
into lines at its " · "), and a legend of the class colours the strips name.

    >>> mass = mass_panel(ax, sample.image, ocr_map, cell_pred, (r, c), PALETTE, CLASSES,   # doctest: +SKIP
    ...                   title="car window")
    >>> class_legend(fig, [mass], PALETTE, CLASSES)                                        # doctest: +SKIP
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from ..context import strip_text
from ..context.types import ContextMap
from .mass_view import DEFAULT_SCALE, mass_view_image, mass_view_rgba

LEGEND_TITLE = ("colour = the class the model predicts at the source cell; strength = that class's share of "
                "the map (the strip under the panel) x the cell's value within its class")


def class_mass(context_map: ContextMap | np.ndarray, cell_classes: np.ndarray,
               class_names: Sequence[str]) -> dict[str, float]:
    """{class name: the map's mass on the cells predicted as that class}; a ContextMap adds "off-grid"."""
    cm = context_map if isinstance(context_map, ContextMap) else None
    weights = np.asarray(cm.weights if cm is not None else context_map, np.float64)
    cls = np.asarray(cell_classes)
    if cls.shape != weights.shape:
        raise ValueError(f"the map is {weights.shape} and cell_classes {cls.shape}; give two h x w arrays "
                         f"over the same feature grid")
    if cm is not None:
        return cm.mass_by_class(cls, list(class_names))
    sums = np.bincount(cls.ravel(), weights=weights.ravel(), minlength=len(class_names))   # K
    return {str(n): float(sums[k]) for k, n in enumerate(class_names)}


def strip_lines(mass: Mapping[str, float], width: int = 38) -> str:
    """The mass strip (``strip_text``, as the explorer writes it) broken into lines of at most
    ``width`` characters at its " · "."""
    lines: list[str] = []
    for part in strip_text(dict(mass)).split(" · "):
        if lines and len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return "\n".join(lines)


def cell_box(cell: tuple[int, int], grid: tuple[int, int],
             image_hw: tuple[int, int]) -> tuple[float, float, float, float]:
    """(x0, y0, width, height) in imshow's pixel coordinates of the image pixels that show ``cell``
    in :func:`mass_view_image` (pixel y shows cell row floor(y * h / H))."""
    (r, c), (h, w), (height, width) = cell, grid, image_hw
    if not (0 <= r < h and 0 <= c < w):
        raise ValueError(f"cell {cell} is outside the {h} x {w} grid; give (row, col) with 0 <= row < {h}, "
                         f"0 <= col < {w}")
    rows = np.nonzero(np.arange(height) * h // height == r)[0]
    cols = np.nonzero(np.arange(width) * w // width == c)[0]
    return float(cols[0]) - 0.5, float(rows[0]) - 0.5, float(len(cols)), float(len(rows))


def mass_panel(ax: Axes, image: np.ndarray, context_map: ContextMap | np.ndarray, cell_classes: np.ndarray,
               cell: tuple[int, int], palette: Sequence[Sequence[int]], class_names: Sequence[str], *,
               mass: Mapping[str, float] | None = None, title: str = "", scale: str = DEFAULT_SCALE,
               strip_width: int = 38, fontsize: float = 9) -> dict[str, float]:
    """Draw the mass view of an h x w map over the faded H x W ``image`` on ``ax``, the pixel's
    ``cell`` outlined, the mass strip under the panel; return the strip's shares.

    cell_classes: h x w predicted class per cell (the colours, and what the strip counts by).
    mass: the strip's {class name: share}; default :func:`class_mass` of the map.
    """
    if mass is None:
        mass = class_mass(context_map, cell_classes, class_names)
    rgba = mass_view_rgba(context_map, cell_classes, palette, class_names, mass=mass, scale=scale)   # h x w x 4
    ax.imshow(mass_view_image(image, rgba))
    x0, y0, bw, bh = cell_box(cell, rgba.shape[:2], np.asarray(image).shape[:2])
    for edge, lw in (("black", 3), ("white", 1.2)):
        ax.add_patch(Rectangle((x0, y0), bw, bh, fill=False, ec=edge, lw=lw))
    ax.set_title(title)
    ax.text(0.5, -0.03, strip_lines(mass, strip_width), transform=ax.transAxes, ha="center", va="top",
            fontsize=fontsize)
    ax.axis("off")
    return dict(mass)


def class_legend(fig: Figure, masses: Iterable[Mapping[str, float]], palette: Sequence[Sequence[int]],
                 class_names: Sequence[str], *, least: float = 0.03, title: str = LEGEND_TITLE,
                 fontsize: float = 9) -> list[str]:
    """A legend under ``fig`` of the class colours holding at least ``least`` of one of ``masses``;
    returns the class names it shows."""
    masses = list(masses)
    shown = [k for k, n in enumerate(class_names) if any(m.get(n, 0.0) >= least for m in masses)]
    fig.legend(handles=[Patch(color=np.asarray(palette[k]) / 255, label=class_names[k]) for k in shown],
               loc="lower center", ncol=max(1, len(shown)), frameon=False, fontsize=fontsize,
               title=title, title_fontsize=fontsize)
    return [class_names[k] for k in shown]
