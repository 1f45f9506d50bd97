"""A context site on another grid than the explorer's (SegFormer's MiT stages: strides 4, 8, 16, 32):
which of its cells a click selects, and how its map is drawn on the explorer's cells.

The one display rule, written here and again in ``js/site_grids.js`` (a fixture from
this module checks that they agree):

* explorer cell row ``i`` (of ``h``) lies in site row ``floor((i + 0.5) * gh / h)`` (its
  centre), columns likewise: a click selects that site cell;
* a site cell's weight is shared equally by the explorer cells whose centre lies in
  it; a site cell that holds no explorer cell's centre (a site grid finer than the
  explorer's) gives all its weight to the explorer cell under its own centre.

So the drawn map keeps every site cell's mass (``spread_matrix`` is column-stochastic)
and the strip's class shares are those of the drawn map: ``class_fractions`` gives,
per site cell, the share of its weight drawn on each class's explorer cells.

Shapes: h x w explorer grid, gh x gw site grid, K classes.
"""
from __future__ import annotations

import numpy as np


def centre_index(n_from: int, n_to: int) -> np.ndarray:
    """For each of ``n_from`` cells along one axis, the one of ``n_to`` cells its centre lies in.

    >>> centre_index(4, 2).tolist(), centre_index(5, 3).tolist()
    ([0, 0, 1, 1], [0, 0, 1, 2, 2])
    """
    return np.minimum(((np.arange(n_from) + 0.5) * n_to / n_from).astype(np.int64), n_to - 1)


def site_cell(cell: tuple[int, int], grid: tuple[int, int], site_grid: tuple[int, int]) -> tuple[int, int]:
    """The site cell that explorer cell ``cell`` (on ``grid``) selects: the one its centre lies in."""
    (h, w), (gh, gw) = grid, site_grid
    return int(centre_index(h, gh)[cell[0]]), int(centre_index(w, gw)[cell[1]])


def spread_matrix(site_grid: tuple[int, int], grid: tuple[int, int]) -> np.ndarray:
    """(h w) x (gh gw) float64 U: a site map m (gh gw) is drawn on the explorer's cells as U @ m.
    Each column sums to 1 (no mass is lost or made); the identity when the grids agree."""
    (gh, gw), (h, w) = site_grid, grid
    rows, cols = centre_index(h, gh), centre_index(w, gw)
    owner = (rows[:, None] * gw + cols[None, :]).reshape(-1)                  # HW: the site cell of each cell
    u = np.zeros((h * w, gh * gw))
    u[np.arange(h * w), owner] = 1.0
    count = u.sum(0)                                                          # gh gw
    orphan = np.flatnonzero(count == 0)                                       # finer site grid: no centre in it
    if orphan.size:
        er, ec = centre_index(gh, h)[orphan // gw], centre_index(gw, w)[orphan % gw]
        u[er * w + ec, orphan] = 1.0
        count[orphan] = 1.0
    return u / count


def class_fractions(site_grid: tuple[int, int], cell_class: np.ndarray, k: int) -> np.ndarray:
    """(gh gw) x K: the share of each site cell's weight that is drawn on explorer cells of class k
    (``cell_class``: h x w).  A site map's class masses are ``m @ class_fractions(...)``; on the
    explorer's own grid this is the one-hot partition."""
    cls = np.asarray(cell_class)
    onehot = np.zeros((cls.size, k))                                          # HW x K
    onehot[np.arange(cls.size), cls.reshape(-1)] = 1.0
    return spread_matrix(tuple(site_grid), cls.shape).T @ onehot             # (gh gw) x K


def grid_note(site_grid: tuple[int, int], grid: tuple[int, int], image_hw: tuple[int, int] | None = None,
              cell_grid: tuple[int, int] | None = None) -> str:
    """One sentence for a panel whose site is on another grid ("" when the grids agree); ``cell_grid``:
    the grid of the cells a rollout's rows belong to, when not the grid of its maps.

    >>> grid_note((16, 32), (32, 64), (128, 256))[:60]
    "this site's grid is 16 x 32 (stride 8), the explorer's 32 x "
    """
    (gh, gw), (h, w) = tuple(site_grid), tuple(grid)
    ch, cw = tuple(cell_grid or site_grid)
    on = lambda a, b: f"{a} x {b}" + (f" (stride {round(image_hw[0] / a)})" if image_hw else "")  # noqa: E731
    if (ch, cw) != (gh, gw):
        said = (f"the click selects the {on(ch, cw)} cell under its centre (dashed), traced back to the "
                f"{on(gh, gw)} grid")
        if (gh, gw) != (h, w):
            said += f", each of whose cells is drawn shared equally over the explorer cells whose centre lies in it"
        return said
    if (gh, gw) == (h, w):
        return ""
    return (f"this site's grid is {on(gh, gw)}, the explorer's {h} x {w}: the click selects the {gh} x {gw} "
            f"cell under its centre (dashed), and each cell's weight is drawn shared equally over the explorer "
            f"cells whose centre lies in it")
