"""Where a pixel's context comes from, for every context head: ``context_maps(cache, pixel)``.

    >>> logits, cache = ocrviz.run_with_cache(model, x)          # doctest: +SKIP
    >>> maps = ocrviz.context_maps(cache, (y, x))                 # one per context site, forward order

(Branch ``heads``: the lead merges this with the OCR / dilated-taps producers.)
"""
from __future__ import annotations

from .sites import SiteRecord
from .types import ContextMap

__all__ = ["ContextMap", "context_maps", "cell_of"]


def cell_of(pixel: tuple[int, int], grid: tuple[int, int], input_size: tuple[int, int]) -> tuple[int, int]:
    """(floor(y * h / H), floor(x * w / W)): the grid cell under input pixel (y, x)."""
    (y, x), (h, w), (H, W) = pixel, grid, input_size
    if not (0 <= y < H and 0 <= x < W):
        raise ValueError(f"pixel {pixel} is outside the {H} x {W} input")
    return int(y * h // H), int(x * w // W)


def context_maps(cache, pixel: tuple[int, int], *, batch: int = 0) -> list[ContextMap]:
    """One :class:`ContextMap` per captured context-site call, in forward order.

    ``pixel`` is (y, x) in the input image; each site maps it to its own grid.
    """
    records: list[SiteRecord] = list(getattr(cache, "context_sites", []))
    if not records:
        raise ValueError("this cache holds no context site; capture a model with a context head "
                         "(ocrviz.run_with_cache(model, x)) with names=None")
    if cache.input_size is None:
        raise ValueError("this cache does not know the input size; capture with ocrviz.run_with_cache")
    return [r.map(batch, cell_of(pixel, r.grid, cache.input_size)) for r in records]
