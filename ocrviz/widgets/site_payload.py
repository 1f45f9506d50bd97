"""Every context site of a model, every cell's map, as the explorer's page draws it.

``site_entries(cache, cell_class, class_names)`` reads ``ocrviz.context``'s
map of every cell at every context site found in ``cache`` (one entry per site,
forward order: CCNet's two passes, SegFormer's layers, ...), generic across head
families, and packs what the page needs to redraw a click without the kernel:

* ``maps``: HW x HW uint8, row q = cell q's map quantised with its own scale
  (``scales``: HW float32, row max / 255; error <= scale / 2, below one colour step);
* ``off_grid``: HW float32, each map's mass outside the image;
* ``class_mass``: HW x K float32, each map's exact mass on the cells of each class
  of one partition of the explorer's grid (``cell_class``: the OCR model's or this
  model's argmax at feature resolution; a site on another grid counts as it is
  drawn, ``site_grids``), so that the strip under the map is exact although the
  map travels as 8-bit codes;
* ``sources`` / ``source_rows`` (HW x S float32) when a site mixes a few sources
  (regions, bins, bases): the ranked bars;
* ``note``: one plain sentence the panel shows under its legend ("" when none), e.g. DANet's
  PAM map saying that CAM has no spatial map (``ContextMap.extra["note"]``).

After the sites come their rollouts (``site_rollouts``, stated conventions: ``exact`` False): CCNet's
passes A_n ... A_1, each MiT stage's layers, and a SegFormer's last stage traced to its first
(rows: cells of ``cell_grid``, maps on ``grid``).

Buffers are ``{"b64", "deflate", "shuffle", "fixed"}`` specs (``payload.encode_buffer``
in base64), so that one JSON value travels both in the widget and in a saved page.
A grid too large to ship (HW > ``MAX_SITE_CELLS``) gives an entry with ``why``: one
plain sentence the panel shows instead of the map.

Shapes: h x w site grid, HW = h * w cells, K classes, S sources.
"""
from __future__ import annotations

import base64
from typing import Any, Sequence

import numpy as np

from .payload import encode_buffer
from .site_grids import class_fractions, grid_note

# HW x HW uint8 codes: 4096 cells (e.g. 64 x 64, or ToyCity's 32 x 64 = 2048) is 16 MiB before deflate.
MAX_SITE_CELLS = 4096
MAX_HEADS = 3               # compare= beside the explorer's own model
MAX_SOURCES = 64            # ranked bars only for a few sources (OCR's regions, PSP's 50 bins, EMA's 64 bases)
FAMILY = {"ocr": "OCR", "aspp": "ASPP taps", "self_attention": "self-attention", "criss_cross": "criss-cross",
          "pooling_bins": "pooling bins", "global_context": "global context", "isa": "interlaced sparse",
          "em": "EM bases", "transformer": "transformer attention"}


def _spec(raw: bytes, shuffle: int = 1) -> dict[str, Any]:
    s = encode_buffer(raw, shuffle=shuffle)
    return {"b64": base64.b64encode(s["buf"]).decode("ascii"), "deflate": s["deflate"],
            "shuffle": s["shuffle"], "fixed": 0}


def _f32(a: np.ndarray) -> dict[str, Any]:
    return _spec(np.ascontiguousarray(a, "<f4").tobytes(), shuffle=4)


def quantise_rows(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """N x M non-negative rows -> (N x M uint8 codes, N float32 scales), row i ~= codes[i] * scales[i].

    >>> q, s = quantise_rows(np.array([[0.0, 0.5, 1.0], [0.0, 0.0, 0.0]]))
    >>> q.tolist(), s.tolist()
    ([[0, 128, 255], [0, 0, 0]], [0.003921568859368563, 1.0])
    """
    top = maps.max(axis=1)                                                         # N
    scales = np.where(top > 0, top / 255.0, 1.0).astype(np.float32)
    codes = np.clip(np.round(maps / scales[:, None].astype(np.float64)), 0, 255).astype(np.uint8)
    return codes, scales


def site_title(kind: str, path: str, label: str = "", grid: tuple[int, int] | None = None) -> str:
    """'toycity-cc: criss-cross at head.cca.0' (the family's name, the module path; the site's grid when
    it is not the explorer's)."""
    where = f" at {path}" if path else ""
    on = f" ({grid[0]} x {grid[1]})" if grid else ""
    return f"{label + ': ' if label else ''}{FAMILY.get(kind, kind)}{where}{on}"


def site_entries(cache: Any, cell_class: np.ndarray, class_names: Sequence[str], *, label: str = "",
                 batch_index: int = 0, image_hw: tuple[int, int] | None = None,
                 max_cells: int = MAX_SITE_CELLS) -> list[dict[str, Any]]:
    """One JSON-able entry per context site in ``cache`` (forward order), every cell's map packed.

    ``cache`` from ``ocrviz.run_with_cache(model, x)``; ``cell_class``: h x w class per cell of the
    explorer's grid (the partition the strips count by); ``label``: the model's name in the titles.
    A site on another grid is drawn on the explorer's by ``site_grids`` (its ``grid_note`` says how).
    Each entry: ``{id, title, kind, site, exact, convention, grid, label, note, grid_note}`` and either
    the buffers described in the module docstring or ``why`` (grid too large: what fits).  Rollouts
    across sites (CCNet's passes, MiT's stages: ``site_rollouts``) follow, with ``rollout_of`` and,
    when their rows are cells of another grid than their maps, ``cell_grid``.
    """
    from ocrviz.context import find_sites

    from . import site_rollouts

    k = len(class_names)
    explorer = tuple(np.asarray(cell_class).shape)
    out: list[dict[str, Any]] = []
    passes: list[tuple[str, np.ndarray]] = []                     # criss-cross passes, for their rollout
    for n, (producer, site) in enumerate(find_sites(cache)):
        h, w = site.grid
        hw = h * w
        entry: dict[str, Any] = {"id": f"site-{n}", "kind": site.kind, "site": site.path, "grid": [h, w],
                                 "label": label, "title": site_title(site.kind, site.path, label,
                                                                     None if (h, w) == explorer else (h, w))}
        if hw > max_cells:
            side = int(max_cells ** 0.5)
            one = producer.read(cache, site, (h // 2, w // 2), batch_index)       # what the maps are, said once
            entry.update(exact=bool(one.exact), convention=one.convention, note=str(one.extra.get("note", "")),
                         grid_note=grid_note((h, w), explorer, image_hw), on_demand=True, why=(
                f"This site's {h} x {w} grid ({hw} cells) is too large to send every cell's map to the page "
                f"(up to {max_cells} cells fit, e.g. {side} x {side}): in a live notebook the kernel sends the "
                f"clicked cell's map; this page has no kernel, so use ocrviz.context_maps in Python for it."))
            if one.sources is not None and 0 < len(one.sources) <= MAX_SOURCES:
                entry["sources"] = [str(x) for x in one.sources]               # the bars: rows come with answers
            out.append(entry)
            continue
        maps = np.empty((hw, hw), np.float64)                                       # HW x HW: row q = cell q
        off = np.empty(hw, np.float64)
        first = None
        rows: list[np.ndarray] = []
        for q in range(hw):
            m = producer.read(cache, site, (q // w, q % w), batch_index)
            first = first or m
            maps[q] = m.weights.reshape(-1)                                        # h x w -> HW
            off[q] = m.off_grid
            if m.sources is not None and m.source_weights is not None:
                rows.append(np.asarray(m.source_weights, np.float64).reshape(-1))
        entry.update(exact=bool(first.exact), convention=first.convention, note=str(first.extra.get("note", "")),
                     grid_note=grid_note((h, w), explorer, image_hw),
                     **_packed(maps, off, class_fractions((h, w), cell_class, k)))
        src = first.sources
        if src is not None and len(rows) == hw and 0 < len(src) <= MAX_SOURCES:
            entry.update(sources=[str(s) for s in src], source_rows=_f32(np.stack(rows)))   # HW x S
        out.append(entry)
        if site.kind == "criss_cross" and off.max() == 0:
            passes.append((site.path, maps))
    grid = tuple(out[-1]["grid"]) if out else explorer
    extra = [site_rollouts.criss_cross(passes, grid)] + site_rollouts.mit(cache, batch_index, max_cells)
    for r in filter(None, extra):
        g, cg = tuple(r["grid"]), tuple(r["cell_grid"])
        entry = {"id": f"site-{len(out)}", "title": f"{label + ': ' if label else ''}{r['title']}",
                 "kind": r["kind"], "site": r["site"], "grid": list(g), "label": label, "exact": False,
                 "convention": r["convention"], "rollout_of": r["rollout_of"], "note": "",
                 "grid_note": grid_note(g, explorer, image_hw, cell_grid=cg),
                 **_packed(r["maps"], r["off"], class_fractions(g, cell_class, k))}
        if cg != g:
            entry["cell_grid"] = list(cg)
        out.append(entry)
    return out


def _packed(maps: np.ndarray, off: np.ndarray, fractions: np.ndarray) -> dict[str, Any]:
    """R x C maps (row q: cell q's map), R off-grid masses, C x K class fractions (``site_grids``) ->
    the entry's buffers; the class masses are exact (float64 maps)."""
    codes, scales = quantise_rows(maps)
    return {"maps": _spec(codes.tobytes()), "scales": _f32(scales), "off_grid": _f32(off),
            "class_mass": _f32(maps @ fractions)}                                   # R x K, exact


def _label(model: Any, i: int) -> str:
    arch, card = getattr(model, "arch", None), getattr(model, "card", None) or {}
    head = getattr(model, "decode_head", None)                  # MMSeg: "SegformerHead", "NLHead", ...
    arch = arch or (type(head).__name__ if head is not None else None)
    return str(getattr(model, "name", None) or card.get("name")
               or (f"head {i + 1} ({arch})" if arch else f"head {i + 1}"))


def head_sites(models: Any, x: Any, cell_class: np.ndarray, class_names: Sequence[str], *,
               cache: Any = None, rows: Any = None, first: int = 0,
               max_cells: int = MAX_SITE_CELLS) -> list[dict[str, Any]]:
    """``[{"label", "sites": [entry, ...]}]``: each model of ``models`` run once on ``x`` with capture,
    every context site's maps packed by :func:`site_entries` (the strips count by ``cell_class``).

    ``models``: a sequence of models or shipped names (``"toycity-sa"``, loaded with
    ``ocrviz.load_model``), or a dict {label: model}.  A model without a context site is refused,
    naming what was captured.  ``cache``: one model's capture on ``x`` already made (not run again).
    ``rows``: a ``site_rows.SiteRows`` that keeps the capture of each head with a site over ``max_cells``
    cells (answered cell by cell in the kernel); the heads are numbered from ``first`` (their place in
    the explorer's ``sites`` trait).
    """
    import torch

    from ocrviz.capture import run_with_cache

    items = list(models.items()) if isinstance(models, dict) else [(None, m) for m in models]
    out = []
    for i, (label, m) in enumerate(items):
        if isinstance(m, str):
            from ocrviz import load_model

            label, m = label or m, load_model(m)
        label = label or _label(m, i)
        if cache is None or len(items) != 1:
            m.to(x.device)
            was = m.training
            m.eval()
            try:
                _, cache = run_with_cache(m, x)
            finally:
                m.train(was)
        k = len(class_names)
        n = getattr(m, "num_classes", k)
        if n != k:
            raise ValueError(f"compare: {label} has {n} classes, the explorer's model {k}; compare heads trained "
                             f"on the same classes (e.g. the ToyCity models)")
        entries = site_entries(cache, cell_class, class_names, label=label, image_hw=tuple(x.shape[-2:]),
                               max_cells=max_cells)
        if not entries:
            raise ValueError(f"compare: {label} has no context site that ocrviz.context can read (captured: "
                             f"{', '.join(list(cache.names())[:8])}); pass a model with a context head "
                             f"(self-attention, CCNet, PSP, DANet, OCR, ASPP, ...)")
        out.append({"label": label, "sites": entries})
        if rows is not None and any(e.get("on_demand") for e in entries):
            rows.keep(first + i, cache, cell_class, k)
        cache = None
        torch.cuda.empty_cache() if x.device.type == "cuda" else None
    return out
