"""The gradient ERF as a ContextMap: how sensitive a pixel's logit is to each cell. A convention.

Not a context head's own weights but the model-agnostic baseline the explorer
draws beside ASPP's taps (``analysis/erf.py``): |d logit / d input| of the
pixel's predicted class, summed over colour channels, averaged over each
cell's pixels and normalised to sum 1 over the cells.  Gradients are taken
with respect to image pixels, so nothing falls off the grid.

Example::

    m = gradient_erf_map(aspp_model, x, (120, 300))    # x: 1 x 3 x H x W
    m.weights.sum(), m.convention                       # 1.0, the sentence below
"""
from __future__ import annotations

import numpy as np
import torch

from .types import ContextMap

KIND = "erf"
CONVENTION = ("gradient ERF: |d logit / d input| of the predicted class, summed over colour channels, "
              "averaged over each cell's pixels, normalised to sum 1 (a sensitivity, not a mixing weight)")


def from_cells(cells: np.ndarray, cell: tuple[int, int], *, site: str = "input") -> ContextMap:
    """A ContextMap from an h x w ERF (any non-negative map; normalised here, uniform when all zero)."""
    a = np.abs(np.asarray(cells, np.float64))
    total = a.sum()
    a = a / total if total > 0 else np.full_like(a, 1.0 / a.size)
    return ContextMap(weights=a, off_grid=0.0, cell=tuple(int(v) for v in cell), exact=False,
                      convention=CONVENTION, site=site, kind=KIND)


def gradient_erf_map(model: torch.nn.Module, image: torch.Tensor, pixel: tuple[int, int],
                     target: int | None = None, stride: int | None = None) -> ContextMap:
    """The ERF of image pixel ``(y, x)``'s logit (``target``, default its predicted class) as a ContextMap.

    ``image``: 1 x 3 x H x W, the model's input; cells of ``stride`` pixels (default: the model's
    ``output_stride``, else 8).  The cell is (floor(y*h/H), floor(x*w/W)).
    """
    from ..analysis.erf import gradient_erf

    y, x = (int(v) for v in pixel)
    erf = gradient_erf(model, image, y, x, target, stride)
    (h, w), (height, width) = erf.cells.shape, image.shape[-2:]
    m = from_cells(erf.cells, (y * h // height, x * w // width))
    m.extra["target"] = erf.target
    return m
