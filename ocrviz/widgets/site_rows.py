"""A clicked cell's map of a context site too large to ship whole, computed in the kernel on demand.

A site whose grid has more cells than the page may receive (``site_payload.MAX_SITE_CELLS``;
a self-attention head at Cityscapes size has 128 x 256 cells, so every cell's map would be
32 768 x 32 768) travels with ``on_demand`` and a sentence instead of its maps.  In a live
notebook the page asks for the selected cell's row (``{key, head, site, row}``) and :class:`SiteRows` answers it from the capture's stored factors (queries and
keys, never an HW x HW matrix), read by the same ``ocrviz.context`` producer as every other
map (one ``site_request`` = ``{key, rows: [...]}`` carries every row one redraw wants, each answered
in turn): ``site_answer`` = ``{key, head, site, row, maps, scale, off, shares}`` (``maps``: the row
as 8-bit codes, ``site_payload``'s buffer spec; ``shares``: its exact K class masses as
drawn, ``site_grids``), or ``{key, error}``.  A saved page has no kernel: it shows the sentence.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .site_grids import class_fractions


class SiteRows:
    """The captures of heads with on-demand sites, by their place in the explorer's ``sites`` trait."""

    def __init__(self) -> None:
        self._heads: dict[int, tuple[Any, np.ndarray, int]] = {}
        self._fractions: dict[tuple[int, tuple[int, int]], np.ndarray] = {}

    def __bool__(self) -> bool:
        return bool(self._heads)

    def keep(self, head: int, cache: Any, cell_class: np.ndarray, k: int) -> None:
        """Keep head ``head``'s capture (its factors) for answering; ``cell_class``: the explorer's h x w."""
        self._heads[int(head)] = (cache, np.asarray(cell_class), int(k))

    def answer(self, request: dict) -> dict[str, Any]:
        """The map of row ``request["row"]`` of site ``request["site"]`` of head ``request["head"]``."""
        from ocrviz.context import find_sites

        from .site_payload import _f32, _spec, quantise_rows

        key = request.get("key")
        try:
            j, i, q = (int(request[n]) for n in ("head", "site", "row"))
        except (KeyError, TypeError, ValueError):
            return {"key": key, "error": f"a site request is {{key, head, site, row}}, got {request!r}"}
        if j not in self._heads:
            return {"key": key, "error": f"head {j} has no on-demand site (heads kept: {sorted(self._heads)})"}
        cache, cls, k = self._heads[j]
        sites = find_sites(cache)
        if not 0 <= i < len(sites):
            return {"key": key, "error": f"site {i} of head {j}: it has {len(sites)} sites, 0..{len(sites) - 1}"}
        producer, site = sites[i]
        h, w = site.grid
        if not 0 <= q < h * w:
            return {"key": key, "error": f"row {q} is outside site {i}'s {h} x {w} grid"}
        m = producer.read(cache, site, (q // w, q % w))
        row = np.asarray(m.weights, np.float64).reshape(1, -1)                  # 1 x HW
        codes, scales = quantise_rows(row)
        fk = (j, (h, w))
        if fk not in self._fractions:
            self._fractions[fk] = class_fractions((h, w), cls, k)              # HW x K
        shares = row[0] @ self._fractions[fk]                                   # K, exact
        out = {"key": key, "head": j, "site": i, "row": q, "maps": _spec(codes.tobytes()),
               "scale": float(scales[0]), "off": float(m.off_grid), "shares": [float(v) for v in shares]}
        if m.sources is not None and m.source_weights is not None:
            out.update(sources=[str(s) for s in m.sources], source_row=_f32(np.asarray(m.source_weights)))
        return out
