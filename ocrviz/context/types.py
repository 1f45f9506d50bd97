"""ContextMap: one answer to "where does this pixel's context come from?".

Every context head answers it with the same type: weights over one site's
feature cells plus the mass that fell outside the image, together summing to
1.  Most heads factor as a row over a few *sources* times each source's
spread over cells (OCR: K regions; PSP / ANN: pooled bins; EMA: bases;
self-attention: every cell, the spread being the identity), and the map keeps
that row where there is one.  ``exact`` says whether the weights are the
head's own arithmetic; when not, ``convention`` says in one line what was
chosen (e.g. ASPP's branch shares).

Example::

    maps = ocrviz.context_maps(cache, (y, x))      # one per context site, forward order
    maps[0].weights.shape, maps[0].off_grid          # (h, w), 0.0
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

# The largest |weights.sum() + off_grid - 1| a producer may hand out.
MASS_TOLERANCE = 1e-4


@dataclass(frozen=True, eq=False)
class Site:
    """One context site found in a cache: where it is and which captured tensors it reads.

    path: module path of the site ("" for the model itself).
    kind: head family ("ocr", "aspp", ...), the producer module's ``KIND``.
    hooks: {role: captured name} of the tensors the producer reads.
    grid: (h, w) of the site's feature grid.
    order: position of the site's last hook in ``cache.names()`` (forward order).
    """

    path: str
    kind: str
    hooks: Mapping[str, str]
    grid: tuple[int, int]
    order: int


@dataclass(frozen=True)
class ContextMap:
    """Where pixel ``cell``'s context at ``site`` comes from.

    weights: h x w, >= 0, over the site's grid (float64).
    off_grid: mass that fell outside the image (zero padding, ...).
    cell: (row, col) of the clicked pixel on that grid.
    exact: True when ``weights`` is the head's own arithmetic.
    convention: one line saying what is a convention ("" when exact).
    site: module path of the context site.
    kind: head family ("ocr", "aspp", ...).
    sources / source_weights: where the context mixes a few sources (OCR's K
        regions and the pixel's sim row), their names and the row; else None.
    """

    weights: np.ndarray
    off_grid: float
    cell: tuple[int, int]
    exact: bool
    convention: str
    site: str
    kind: str
    sources: tuple[str, ...] | None = None
    source_weights: np.ndarray | None = None
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        w = np.asarray(self.weights, dtype=np.float64)
        if w.ndim != 2:
            raise ValueError(f"ContextMap.weights must be h x w, got shape {w.shape}")
        if not np.isfinite(w).all() or (w < -1e-12).any():
            raise ValueError(f"ContextMap.weights at {self.site} must be finite and >= 0")
        if not np.isfinite(self.off_grid) or self.off_grid < -1e-12:
            raise ValueError(f"ContextMap.off_grid at {self.site} is {self.off_grid}; it is a mass, >= 0")
        total = float(w.sum()) + float(self.off_grid)
        if abs(total - 1.0) > MASS_TOLERANCE:
            raise ValueError(f"ContextMap at {self.site}: weights.sum() + off_grid = {total:.6f}, must be 1")
        if not self.exact and not self.convention:
            raise ValueError(f"ContextMap at {self.site} is not exact: say its convention in one line")
        if self.exact and self.convention:
            raise ValueError(f"ContextMap at {self.site} is exact: its convention must be empty")
        object.__setattr__(self, "weights", np.clip(w, 0.0, None))

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w) of the site's grid."""
        return tuple(self.weights.shape)  # type: ignore[return-value]

    def mass_by_class(self, cell_classes: np.ndarray, class_names: list[str] | tuple[str, ...]) -> dict[str, float]:
        """{class name: share of the mass on cells predicted as that class} plus "off-grid"; sums to 1.

        ``cell_classes``: h x w integer class per cell of this site's grid.
        """
        cls = np.asarray(cell_classes)
        names = [str(n) for n in class_names]
        if cls.shape != self.weights.shape:
            raise ValueError(f"cell_classes has shape {cls.shape}; this map's grid is {self.weights.shape} "
                             f"(give the class of each cell of this site's grid, e.g. ocrviz.context.cell_classes)")
        if cls.dtype.kind not in "iu" or (cls.size and (cls.min() < 0 or cls.max() >= len(names))):
            raise ValueError(f"cell_classes must be integer class ids in 0..{len(names) - 1} (one per class "
                             f"name); got dtype {cls.dtype}, range {cls.min() if cls.size else '-'}.."
                             f"{cls.max() if cls.size else '-'}")
        if len(set(names)) != len(names) or "off-grid" in names:
            raise ValueError(f"class_names must be distinct and may not be 'off-grid'; got {names}")
        sums = np.bincount(cls.ravel(), weights=self.weights.ravel(), minlength=len(names))
        out = {n: float(sums[k]) for k, n in enumerate(names)}
        out["off-grid"] = float(self.off_grid)
        return out
