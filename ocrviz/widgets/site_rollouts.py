"""Every cell's rollout across several context sites, as extra explorer entries (stated conventions,
never ``exact``): CCNet's passes, each MiT stage's layers, and a SegFormer's last stage traced back to
its first (``ocrviz.context.criss_cross.ROLLOUT``, ``transformer.ROLLOUT`` and ``transformer.PATCH_EMBED``).

Each function returns plain matrices (``site_payload`` packs them): ``maps`` R x C float64, row q =
the map of cell q of ``cell_grid`` (R cells) over ``grid`` (C cells), ``off`` R float64 = 1 - row sum.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def _entry(title: str, kind: str, site: str, grid: tuple[int, int], cell_grid: tuple[int, int],
           convention: str, rollout_of: list[str], maps: np.ndarray) -> dict[str, Any]:
    off = np.clip(1.0 - maps.sum(1), 0.0, None)                                # R
    return {"title": title, "kind": kind, "site": site, "grid": list(grid), "cell_grid": list(cell_grid),
            "convention": convention, "rollout_of": rollout_of, "maps": maps, "off": off}


def criss_cross(passes: list[tuple[str, np.ndarray]], grid: tuple[int, int]) -> dict[str, Any] | None:
    """CCNet's passes (path, HW x HW map matrix, forward order) composed: M = A_n ... A_1."""
    if len(passes) < 2 or len({m.shape for _, m in passes}) != 1:
        return None
    from ocrviz.context.criss_cross import ROLLOUT

    m = passes[0][1]
    for _, a in passes[1:]:
        m = a @ m                                                               # HW x HW
    paths = [p for p, _ in passes]
    return _entry(f"criss-cross rollout of {len(paths)} passes", "criss_cross", f"{paths[0]} .. {paths[-1]}",
                  grid, grid, ROLLOUT, paths, m)


def mit(cache: Any, batch_index: int = 0, max_cells: int = 4096) -> list[dict[str, Any]]:
    """SegFormer's MiT: one entry per stage with two or more layers (its layers by rollout), then one for
    the whole backbone (a last-stage cell traced to the first stage's grid through every stage's layers
    and each overlap patch embedding); none when a stage's grid has more than ``max_cells`` cells."""
    from ocrviz.context import transformer as tr

    groups = tr.stages(cache)
    if not groups or max(g[0].grid[0] * g[0].grid[1] for g in groups) > max_cells:
        return []
    mats = [[tr.layer_matrix(r, batch_index).numpy() for r in g] for g in groups]   # HW_i x HW_i each
    rolled = []
    for g, ms in zip(groups, mats):
        m = ms[-1]
        for a in reversed(ms[:-1]):
            m = m @ a                                                           # A_n ... A_1
        rolled.append(m)
    out = []
    for i, (g, m) in enumerate(zip(groups, rolled)):
        if len(g) >= 2:
            grid = tuple(g[0].grid)
            out.append(_entry(f"MiT stage {i + 1} rollout of {len(g)} layers", tr.KIND,
                              f"{g[0].name} .. {g[-1].name}", grid, grid, tr.ROLLOUT, [r.name for r in g], m))
    if len(groups) >= 2:
        t = rolled[-1]                                                          # HW_L x HW_L
        for i in range(len(groups) - 1, 0, -1):
            k, s, p = tr.patch_embed_of(cache, groups[i][0])
            pe = tr.patch_embed_matrix(tuple(groups[i - 1][0].grid), tuple(groups[i][0].grid), k, s, p).numpy()
            t = t @ pe @ rolled[i - 1]                                          # HW_L x HW_(i-1)
        out.append(_entry(f"MiT rollout of all {len(groups)} stages (last stage to first)", tr.KIND,
                          f"{groups[0][0].name} .. {groups[-1][-1].name}", tuple(groups[0][0].grid),
                          tuple(groups[-1][0].grid), f"{tr.ROLLOUT}; {tr.PATCH_EMBED}",
                          [r.name for g in groups for r in g], t))
    return out
