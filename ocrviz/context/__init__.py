"""Where does this pixel's context come from? One answer type, one producer module per head family.

    >>> logits, cache = ocrviz.run_with_cache(model, x)                 # doctest: +SKIP
    >>> maps = ocrviz.context_maps(cache, (y, x))                        # doctest: +SKIP
    >>> [(m.kind, m.site, m.exact) for m in maps]                        # one per site, forward order

Producers are the modules in ``PRODUCERS`` below, an explicit list (no
registry).  Adding a head family is one new module here and one entry in
that list.  A producer module defines:

* ``KIND: str``, the family's name ("ocr", "aspp", ...), the maps' ``kind``;
* ``find_sites(cache: Cache) -> list[Site]``: the family's sites among the
  captured tensors (names, grid, forward order; ``types.Site``), [] when none.
  What capture must store for it (HookPoints on ocrviz models, hooks on
  foreign trees) belongs in ``ocrviz/capture/``; settings that are not
  tensors (rates, weights, class names) are read with ``cache.module(path)``;
* ``read(cache, site, cell, batch_index=0) -> ContextMap``: cell
  ``(row, col)``'s map, with ``weights.sum() + off_grid == 1`` and either
  ``exact=True`` or a one-line ``convention``;

and may define, when it can do better than reading every cell:

* ``masses(cache, site, frac, batch_index=0) -> np.ndarray``: HW x O, every
  cell's map's mass on each of O cell maps ``frac`` (O x h x w), without
  forming the HW maps (dataset analyses: ``context_flow``, the own-object
  share).  Absent, :func:`context_masses` reads every cell;
* ``head_logits(cache, site, batch_index=0) -> Tensor | None``: K x h x w main
  logits at the site's resolution when the cache holds no ``head_logits``
  hook (:func:`cell_classes`).

Pixels map to cells by ``(floor(y * h / H), floor(x * w / W))`` with H x W
the input size the capture recorded (``cache.input_size``).
"""
from __future__ import annotations

from types import ModuleType
from typing import Sequence

import numpy as np
import torch

from ..capture.cache import Cache, resolve
from . import (criss_cross, dilated_taps, em, global_context, isa, mmseg_aspp, ocr, pooling_bins, self_attention,
               transformer)
from .erf import gradient_erf_map
from .types import ContextMap, Site

# The head families, each one module (see the docstring for what a module defines).
# Those that also define ``find_modules(model)`` hook foreign modules during capture (``sites.py``).
PRODUCERS: tuple[ModuleType, ...] = (ocr, dilated_taps, mmseg_aspp, self_attention, criss_cross, pooling_bins,
                                     global_context, isa, em, transformer)

__all__ = ["ContextMap", "Site", "PRODUCERS", "context_maps", "find_sites", "exact_sites", "context_masses", "cell_of",
           "cell_classes", "mass_by_class", "strip_text", "gradient_erf_map"]


def find_sites(cache: Cache) -> list[tuple[ModuleType, Site]]:
    """(producer module, site) for every context site in ``cache``, in forward order."""
    found = [(p, s) for p in PRODUCERS for s in p.find_sites(cache)]
    return sorted(found, key=lambda ps: ps[1].order)


def exact_sites(cache: Cache, *, batch_index: int = 0) -> list[tuple[ModuleType, Site]]:
    """The sites whose maps are the head's own arithmetic (``ContextMap.exact``; read at cell (0, 0)),
    forward order: what ``context_flow`` and the own-object share may score."""
    return [(p, s) for p, s in find_sites(cache) if p.read(cache, s, (0, 0), batch_index).exact]


def cell_of(pixel: Sequence[int], image_hw: tuple[int, int], grid: tuple[int, int]) -> tuple[int, int]:
    """Image pixel (y, x) -> cell (floor(y * h / H), floor(x * w / W)) of an h x w grid over H x W.

    >>> cell_of((31, 44), (32, 45), (7, 11))
    (6, 10)
    """
    (y, x), (height, width), (h, w) = pixel, image_hw, grid
    if isinstance(y, bool) or isinstance(x, bool) or not all(isinstance(v, (int, np.integer)) for v in (y, x)):
        raise ValueError(f"pixel={tuple(pixel)!r}: give integer image coordinates (y, x)")
    if not (0 <= y < height and 0 <= x < width):
        raise ValueError(f"pixel (y={y}, x={x}) is outside the {height} x {width} input image; "
                         f"give (row, column) in the input's pixels")
    return int(y) * h // height, int(x) * w // width


def _image_hw(cache: Cache, image_hw: tuple[int, int] | None) -> tuple[int, int]:
    hw = image_hw if image_hw is not None else cache.input_size
    if hw is None:
        raise ValueError("this cache does not know its input's size; build it with ocrviz.run_with_cache(model, x) "
                         "or pass image_hw=(H, W)")
    return int(hw[0]), int(hw[1])


def context_maps(cache: Cache, pixel: Sequence[int], *, batch_index: int = 0,
                 image_hw: tuple[int, int] | None = None) -> list[ContextMap]:
    """One ContextMap per context site in ``cache`` for image pixel ``pixel = (y, x)``, in forward order.

    ``cache`` from ``ocrviz.run_with_cache(model, x)``; ``pixel`` in the input
    image's coordinates; ``image_hw`` overrides the input size the capture
    recorded.  A model without context sites (an FCN) gives [].

    Example::

        logits, cache = ocrviz.run_with_cache(model, x)
        m = ocrviz.context_maps(cache, (120, 300))[0]
        m.weights.sum() + m.off_grid          # 1.0
    """
    hw = _image_hw(cache, image_hw)
    sites = find_sites(cache)
    for _, s in sites:
        n = len(cache[next(iter(s.hooks.values()))])
        if isinstance(batch_index, bool) or not isinstance(batch_index, (int, np.integer)) or not 0 <= batch_index < n:
            raise ValueError(f"batch_index={batch_index!r}, but the cache holds a batch of {n} at {s.path!r}; "
                             f"give 0..{n - 1}")
    return [p.read(cache, s, cell_of(pixel, hw, s.grid), batch_index) for p, s in sites]


def context_masses(cache: Cache, frac: np.ndarray, *, batch_index: int = 0, kind: str | None = None,
                   path: str | None = None) -> list[tuple[Site, np.ndarray]]:
    """(site, HW x O) per site (of ``kind`` / at module ``path`` when given): every cell's map's mass on
    each cell map in ``frac`` (O x h x w, e.g. ``analysis.cells.class_fractions``), forward order."""
    out = []
    for p, s in find_sites(cache):
        if (kind is not None and s.kind != kind) or (path is not None and s.path != path):
            continue
        f = np.asarray(frac, np.float64)
        if f.shape[1:] != tuple(s.grid):
            raise ValueError(f"frac has cells {f.shape[1:]}; the site {s.path!r} has a {s.grid} grid")
        if hasattr(p, "masses"):
            out.append((s, p.masses(cache, s, f, batch_index)))
        else:
            h, w = s.grid
            rows = [p.read(cache, s, (q // w, q % w), batch_index).weights for q in range(h * w)]
            out.append((s, np.einsum("phw,ohw->po", np.stack(rows), f)))        # HW x O
    return out


def cell_classes(cache: Cache, site: Site | None = None, *, batch_index: int = 0) -> np.ndarray:
    """h x w predicted class per cell: the argmax of the main logits at feature resolution.

    The cache's ``head_logits`` hook when it has one; else the logits the
    site's producer derives (``head_logits``, e.g. ASPP's classifier on its
    projection); ``site`` defaults to the last one in forward order.
    """
    found = resolve("head_logits", cache.names())
    if len(found) == 1:
        return cache[found[0]][batch_index].argmax(0).cpu().numpy()
    sites = find_sites(cache)
    chosen = [ps for ps in sites if site is None or ps[1] is site][-1:]
    for p, s in chosen:
        got = p.head_logits(cache, s, batch_index) if hasattr(p, "head_logits") else None
        if got is not None:
            return got.argmax(0).cpu().numpy()
    raise ValueError(f"cannot tell each cell's predicted class: the cache has no 'head_logits' hook and no site "
                     f"derives them (captured: {', '.join(cache.names())}); pass the main logits at feature "
                     f"resolution through ocrviz.context.mass_by_class's cell_classes yourself")


def mass_by_class(context_map: ContextMap, cell_classes: np.ndarray | torch.Tensor,
                  class_names: Sequence[str]) -> dict[str, float]:
    """{class name: share of the map's mass on cells predicted as that class, "off-grid": ...}, sums to 1.

    The explorer's ``data-mass`` contract; ``cell_classes`` h x w ints (:func:`cell_classes`).
    """
    cls = cell_classes.cpu().numpy() if isinstance(cell_classes, torch.Tensor) else np.asarray(cell_classes)
    return context_map.mass_by_class(cls, class_names)


def strip_text(mass: dict[str, float], most: int = 4, least: float = 0.03) -> str:
    """The mass strip the explorer draws under a panel ("62 % road · 14 % pole · 18 % other"): the
    largest shares (at most ``most``, each at least ``least``), the rest as "other" (ocrviz/widgets/js
    mass.js, ``massText``; JavaScript's Math.round rounds halves up)."""
    order = sorted(mass.items(), key=lambda kv: -kv[1])                 # stable, as Array.sort
    shown = [(n, v) for i, (n, v) in enumerate(order) if i < most and v >= least]
    rest = 1 - sum(v for _, v in shown)
    parts = shown + ([("other", rest)] if rest >= 0.005 else [])
    return " · ".join(f"{int(np.floor(100 * v + 0.5))} % {n}" for n, v in parts)
