"""Every context site of a model, every cell's map, as the explorer's page draws it.

``site_entries(cache, cell_class, class_names)`` reads ``ocrviz.context``'s
map of every cell at every context site found in ``cache`` (one entry per site,
forward order: CCNet's two passes, SegFormer's layers, ...), generic across head
families, and packs what the page needs to redraw a click without the kernel:

* ``maps``: HW x HW uint8, row q = cell q's map quantised with its own scale
  (``scales``: HW float32, row max / 255; error <= scale / 2, below one colour step);
* ``off_grid``: HW float32, each map's mass outside the image;
* ``class_mass``: HW x K float32, each map's exact mass on the cells of each class
  of one partition (``cell_class``: the OCR model's or this model's argmax at
  feature resolution), so that the strip under the map is exact although the
  map travels as 8-bit codes;
* ``sources`` / ``source_rows`` (HW x S float32) when a site mixes a few sources
  (regions, bins, bases): the ranked bars;
* ``note``: one plain sentence the panel shows under its legend ("" when none), e.g. DANet's
  PAM map saying that CAM has no spatial map (``ContextMap.extra["note"]``).

After CCNet's passes (two or more criss-cross sites on one grid) comes one more entry, their
rollout A_n ... A_1 (``criss_cross.ROLLOUT``, a stated convention: ``exact`` False).

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

# HW x HW uint8 codes: 4096 cells (e.g. 64 x 64, or ToyCity's 32 x 64 = 2048) is 16 MiB before deflate.
MAX_SITE_CELLS = 4096
MAX_HEADS = 3               # compare= beside the explorer's own model
MAX_SOURCES = 32            # ranked bars only for a few sources (OCR's regions, PSP's bins, EMA's bases)
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


def partition_for(cell_class: np.ndarray, grid: tuple[int, int]) -> tuple[np.ndarray, str]:
    """``cell_class`` (h0 x w0) on a site's grid (h x w): itself when the grids agree, else each site
    cell takes the class of the partition cell under its centre (said in the returned note)."""
    cls = np.asarray(cell_class)
    if cls.shape == tuple(grid):
        return cls, ""
    h, w = grid
    rows = np.minimum(((np.arange(h) + 0.5) * cls.shape[0] / h).astype(int), cls.shape[0] - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * cls.shape[1] / w).astype(int), cls.shape[1] - 1)
    return cls[np.ix_(rows, cols)], (f"classes from the {cls.shape[0]} x {cls.shape[1]} prediction, "
                                     f"each cell's centre")


def site_title(kind: str, path: str, label: str = "") -> str:
    """'toycity-cc: criss-cross at head.cca.0' (the family's name, the module path)."""
    where = f" at {path}" if path else ""
    return f"{label + ': ' if label else ''}{FAMILY.get(kind, kind)}{where}"


def site_entries(cache: Any, cell_class: np.ndarray, class_names: Sequence[str], *, label: str = "",
                 batch_index: int = 0, image_hw: tuple[int, int] | None = None,
                 max_cells: int = MAX_SITE_CELLS) -> list[dict[str, Any]]:
    """One JSON-able entry per context site in ``cache`` (forward order), every cell's map packed.

    ``cache`` from ``ocrviz.run_with_cache(model, x)``; ``cell_class``: h x w class per
    feature cell (the partition the strips count by); ``label``: the model's name in the titles.
    Each entry: ``{id, title, kind, site, exact, convention, grid, label, partition, note}`` and either
    the buffers described in the module docstring or ``why`` (grid too large: what fits).
    """
    from ocrviz.context import find_sites

    k = len(class_names)
    out: list[dict[str, Any]] = []
    passes: list[tuple[str, np.ndarray, np.ndarray, str]] = []      # criss-cross passes, for their rollout
    for n, (producer, site) in enumerate(find_sites(cache)):
        h, w = site.grid
        hw = h * w
        entry: dict[str, Any] = {"id": f"site-{n}", "title": site_title(site.kind, site.path, label),
                                 "kind": site.kind, "site": site.path, "grid": [h, w], "label": label}
        if hw > max_cells:
            side = int(max_cells ** 0.5)
            entry.update(exact=False, convention="", why=(
                f"This site's {h} x {w} grid ({hw} cells) is too large to send every cell's map to the page: "
                f"up to {max_cells} cells fit (e.g. {side} x {side}); use ocrviz.context_maps in Python for it."))
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
        part, note = partition_for(cell_class, (h, w))
        onehot = np.zeros((hw, k))                                                  # HW x K
        onehot[np.arange(hw), part.reshape(-1)] = 1.0
        entry.update(exact=bool(first.exact), convention=first.convention, partition=note,
                     note=str(first.extra.get("note", "")), **_packed(maps, off, onehot))
        src = first.sources
        if src is not None and len(rows) == hw and 0 < len(src) <= MAX_SOURCES:
            entry.update(sources=[str(s) for s in src], source_rows=_f32(np.stack(rows)))   # HW x S
        out.append(entry)
        if site.kind == "criss_cross" and off.max() == 0:
            passes.append((site.path, maps, onehot, note))
    if len(passes) >= 2 and len({m.shape for _, m, _, _ in passes}) == 1:
        out.append(_rollout_entry(passes, len(out), label, out[-1]["grid"]))
    return out


def _packed(maps: np.ndarray, off: np.ndarray, onehot: np.ndarray) -> dict[str, Any]:
    """HW x HW maps, HW off-grid masses, HW x K one-hot partition -> the entry's buffers."""
    codes, scales = quantise_rows(maps)
    return {"maps": _spec(codes.tobytes()), "scales": _f32(scales), "off_grid": _f32(off),
            "class_mass": _f32(maps @ onehot)}                                      # HW x K, exact


def _rollout_entry(passes: list[tuple[str, np.ndarray, np.ndarray, str]], n: int, label: str,
                   grid: list[int]) -> dict[str, Any]:
    """CCNet's passes composed by rollout (``criss_cross.ROLLOUT``, a stated convention): M = A_n ... A_1,
    row q = cell q's map; the passes put no mass off the grid, so neither does M."""
    from ocrviz.context.criss_cross import ROLLOUT

    paths = [p for p, _, _, _ in passes]
    m = passes[0][1]
    for _, a, _, _ in passes[1:]:
        m = a @ m                                                                   # HW x HW
    hw = m.shape[0]
    path = f"{paths[0]} .. {paths[-1]}"
    return {"id": f"site-{n}", "title": f"{label + ': ' if label else ''}criss-cross rollout of {len(paths)} passes",
            "kind": "criss_cross", "site": path, "grid": list(grid), "label": label, "exact": False,
            "convention": ROLLOUT, "partition": passes[-1][3], "rollout_of": paths,
            **_packed(m, np.zeros(hw), passes[-1][2])}


def _label(model: Any, i: int) -> str:
    arch, card = getattr(model, "arch", None), getattr(model, "card", None) or {}
    return str(getattr(model, "name", None) or card.get("name")
               or (f"head {i + 1} ({arch})" if arch else f"head {i + 1}"))


def head_sites(models: Any, x: Any, cell_class: np.ndarray, class_names: Sequence[str], *,
               cache: Any = None) -> list[dict[str, Any]]:
    """``[{"label", "sites": [entry, ...]}]``: each model of ``models`` run once on ``x`` with capture,
    every context site's maps packed by :func:`site_entries` (the strips count by ``cell_class``).

    ``models``: a sequence of models or shipped names (``"toycity-sa"``, loaded with
    ``ocrviz.load_model``), or a dict {label: model}.  A model without a context site is refused,
    naming what was captured.  ``cache``: one model's capture on ``x`` already made (not run again).
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
        entries = site_entries(cache, cell_class, class_names, label=label)
        if not entries:
            raise ValueError(f"compare: {label} has no context site that ocrviz.context can read (captured: "
                             f"{', '.join(list(cache.names())[:8])}); pass a model with a context head "
                             f"(self-attention, CCNet, PSP, DANet, OCR, ASPP, ...)")
        out.append({"label": label, "sites": entries})
        cache = None
        torch.cuda.empty_cache() if x.device.type == "cuda" else None
    return out
