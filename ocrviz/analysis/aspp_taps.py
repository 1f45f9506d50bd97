"""Where ASPP takes its context from: the fixed taps of each branch.

ASPP (DeepLabV3) has five parallel branches on the feature map: a 1x1 conv,
three 3x3 convs with dilation ``r`` (rates, in feature cells) and an
image-pooling branch.  For the output at feature cell ``(i, j)`` a dilated
3x3 branch reads exactly nine cells, ``(i + dy*r, j + dx*r)`` for
``dy, dx in {-1, 0, 1}``; taps that fall off the grid read the conv's zero
padding, so they are *kept and flagged* (``inside=False``) rather than
dropped: the picture must show that a rate-36 branch near the border mostly
reads zeros.  The pooling branch averages the whole feature map.

Image positions use the cell-centre convention ``(i + 0.5) * output_stride``:
cell ``(i, j)`` covers image pixels ``[i*s, (i+1)*s) x [j*s, (j+1)*s)``.
This is the block the widget outlines and the cell a click lands in
(``pixel // s``).  The receptive field of cell ``i`` is centred half a
stride earlier, on pixel ``i * s`` (stride-2 convs with padding 1, see
``SegModel``); the tap *pattern* (spacing ``rate * s``) is the same either way.

No torch needed: pure Python + numpy, so the widget and tests can share it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

BRANCH_KINDS = ("1x1", "dilated", "pool")


@dataclass(frozen=True)
class Tap:
    """One input cell read by a branch.

    ``cell`` is ``(row, col)`` in feature cells (may lie outside the grid),
    ``pixel`` the cell centre ``(y, x)`` in image pixels (may lie outside the
    image), ``inside`` whether the cell is on the grid (else it reads padding).
    """

    dy: int
    dx: int
    cell: tuple[int, int]
    pixel: tuple[float, float]
    inside: bool


@dataclass(frozen=True)
class Branch:
    """One ASPP branch for one output cell.

    ``kind`` is ``"1x1"`` (one tap: the cell itself), ``"dilated"`` (nine
    taps, ``rate`` in feature cells, ``rate_px`` = rate x output stride in
    image pixels) or ``"pool"`` (no taps; ``extent`` is the whole image
    ``(y0, x0, y1, x1)`` in pixels).
    """

    index: int
    kind: str
    rate: int | None
    rate_px: int | None
    taps: tuple[Tap, ...]
    extent: tuple[float, float, float, float] | None = None

    def to_dict(self) -> dict:
        """JSON-friendly form (what the widget's JS recomputes)."""
        return {
            "branch": self.index, "kind": self.kind, "rate": self.rate, "rate_px": self.rate_px,
            "extent": self.extent,
            "taps": [{"y": t.pixel[0], "x": t.pixel[1], "cell": list(t.cell), "inside": t.inside}
                     for t in self.taps],
        }


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}={value!r} is not allowed; give an integer >= {minimum}")
    return int(value)


def aspp_taps(y: int, x: int, rates: Sequence[int], output_stride: int,
              feat_hw: tuple[int, int], image_hw: tuple[int, int]) -> list[Branch]:
    """The cells each ASPP branch reads for the output at feature cell ``(y, x)``.

    Returns ``len(rates) + 2`` branches: 0 = 1x1 (the cell only), 1..n = the
    dilated 3x3 branches in ``rates`` order (9 taps each, row-major over
    ``dy, dx``), n+1 = image pooling (``extent`` = whole image).

    Example (stride 8, 16 x 32 cells, rate 6, cell (2, 10)):

        >>> b = aspp_taps(2, 10, rates=(6,), output_stride=8, feat_hw=(16, 32), image_hw=(128, 256))
        >>> [t.cell for t in b[1].taps][:3], b[1].taps[0].inside
        ([(-4, 4), (-4, 10), (-4, 16)], False)
        >>> b[1].taps[4].pixel                      # the centre tap: cell centre * stride
        (20.0, 84.0)
    """
    h, w = (_check_int("feat_hw[0]", feat_hw[0], 1), _check_int("feat_hw[1]", feat_hw[1], 1))
    s = _check_int("output_stride", output_stride, 1)
    ih, iw = (_check_int("image_hw[0]", image_hw[0], 1), _check_int("image_hw[1]", image_hw[1], 1))
    y, x = _check_int("y", y, 0), _check_int("x", x, 0)
    if y >= h or x >= w:
        raise ValueError(f"cell (y={y}, x={x}) is outside the {h} x {w} feature grid; "
                         f"pass feature cells (image pixel // output_stride), not image pixels")
    rates = [_check_int(f"rates[{n}]", r, 1) for n, r in enumerate(rates)]

    def tap(dy: int, dx: int, rate: int) -> Tap:
        ti, tj = y + dy * rate, x + dx * rate
        return Tap(dy, dx, (ti, tj), ((ti + 0.5) * s, (tj + 0.5) * s), 0 <= ti < h and 0 <= tj < w)

    branches = [Branch(0, "1x1", None, None, (tap(0, 0, 0),))]
    for n, r in enumerate(rates, start=1):
        taps = tuple(tap(dy, dx, r) for dy in (-1, 0, 1) for dx in (-1, 0, 1))
        branches.append(Branch(n, "dilated", r, r * s, taps))
    branches.append(Branch(len(rates) + 1, "pool", None, None, (), (0.0, 0.0, float(ih), float(iw))))
    return branches


def aspp_branch_shares(branches: Sequence[np.ndarray], project_weight: np.ndarray | None = None) -> np.ndarray:
    """Per-pixel share of each ASPP branch in the projection, HW x n_branches.

    ``branches``: one array per branch, each ``C_i x h x w`` (the pooling
    branch may be ``C x 1 x 1``; it is broadcast).  ASPP's projection is a 1x1
    conv over the concatenation, ``W @ cat(b_0..b_n) = sum_i W_i @ b_i``, so
    branch i contributes ``W_i @ b_i`` at each pixel; its share is
    ``||W_i b_i(p)|| / sum_j ||W_j b_j(p)||``.  Without ``project_weight``
    (``C_out x sum C_i`` or ``C_out x sum C_i x 1 x 1``) the branch outputs'
    own norms are used.  Rows sum to 1 (a pixel with all-zero branches gets
    equal shares).

    Example:
        >>> b = [np.ones((2, 3, 4)), np.zeros((2, 3, 4)), np.ones((2, 1, 1))]
        >>> aspp_branch_shares(b)[0].round(3).tolist()
        [0.5, 0.0, 0.5]
    """
    if not branches:
        raise ValueError("aspp_branch_shares needs at least one branch array (C x h x w)")
    arrays = [np.asarray(b, dtype=np.float64) for b in branches]
    for n, a in enumerate(arrays):
        if a.ndim != 3:
            raise ValueError(f"branch {n} has shape {a.shape}; expected C x h x w (drop the batch axis)")
    h = max(a.shape[1] for a in arrays)
    w = max(a.shape[2] for a in arrays)
    arrays = [np.broadcast_to(a, (a.shape[0], h, w)) for a in arrays]               # C_i x h x w
    if project_weight is not None:
        wt = np.asarray(project_weight, dtype=np.float64)
        wt = wt.reshape(wt.shape[0], -1)                                             # C_out x sum C_i
        total = sum(a.shape[0] for a in arrays)
        if wt.shape[1] != total:
            raise ValueError(f"project_weight has {wt.shape[1]} input channels but the branches have "
                             f"{total} in total; pass the 1x1 projection conv's weight")
        parts, start = [], 0
        for a in arrays:
            wi = wt[:, start:start + a.shape[0]]                                     # C_out x C_i
            parts.append(np.einsum("oc,chw->ohw", wi, a))                            # C_out x h x w
            start += a.shape[0]
        arrays = parts
    norms = np.stack([np.sqrt((a ** 2).sum(0)) for a in arrays], axis=-1)           # h x w x n
    norms = norms.reshape(h * w, len(arrays))                                        # HW x n
    total = norms.sum(1, keepdims=True)
    shares = np.where(total > 0, norms / np.where(total > 0, total, 1.0), 1.0 / len(arrays))
    return shares.astype(np.float32)
