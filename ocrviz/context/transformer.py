"""Transformer attention (SegFormer's MiT): one map per attention layer, read from the queries and keys.

Recognised: MMSeg's ``EfficientMultiheadAttention`` (MixVisionTransformer;
MiT-B0 has 8, two per stage), whose ``attn`` is a torch
``nn.MultiheadAttention``.  Keys and values come from the layer's grid
reduced by an ``sr_ratio`` x ``sr_ratio`` strided conv (sr = 8, 4, 2, 1 by
stage), so a query attends to S = (h // sr) * (w // sr) reduced cells.

Per call the hooks keep the layer's input at the queries (B x HW x E; a
pixel's query is projected when it is read) and the projected keys
(B x heads x S x d), and check that they reproduce both the head-averaged
weights ``nn.MultiheadAttention`` returns and its output (``out_proj`` of the
heads' weighted values), on 256 evenly spaced query rows (every row on
smaller grids; ``self_attention.check_rows``).

The map of pixel p: each head's row is exact over the S reduced cells.  Two
choices are conventions, stated in the legend when they apply: the heads are
averaged (they feed different value projections), and a reduced cell's
weight is spread uniformly over the sr x sr cells its conv reads (the conv
mixes them with learned weights).  With one head and sr = 1 the map is
exact.  ``head_map`` gives one head's map.  The SegformerHead itself (an MLP
over the four stages) has no context site.

Across layers, two more stated conventions (never ``exact``): ``stage_rollout``
composes one stage's layers by rollout (``ROLLOUT``: row p of A_n ... A_1, each
A a layer's map as drawn, residuals and MLPs ignored); ``rollout`` traces a
last-stage cell back to the first stage's grid, each overlap patch embedding
(a strided k x k conv) mapping a cell to the k x k cells it reads, 1/k^2 each
(``PATCH_EMBED``; taps on the padding go off the grid).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..capture.cache import Cache
from ..capture.foreign import verify
from .self_attention import check_rows
from .sites import (CallCounter, Emit, HookSite, SiteRecord, class_names, join, publish, read_site, row_map, sites_of)
from .types import ContextMap, Site

KIND = "transformer"
MIT_CLASSES = frozenset({"EfficientMultiheadAttention"})


def find_modules(model: nn.Module) -> list[HookSite]:
    """MMSeg EfficientMultiheadAttention layers (an nn.MultiheadAttention inside), module order."""
    return [HookSite(path, m, KIND, _attach, (join(path, "query_input"), join(path, "key")))
            for path, m in model.named_modules()
            if class_names(m) & MIT_CLASSES and isinstance(getattr(m, "attn", None), nn.MultiheadAttention)]


def _project(mha: nn.MultiheadAttention, x: torch.Tensor, which: int) -> torch.Tensor:
    """in_proj slice ``which`` (0 q, 1 k, 2 v) of ``x`` (L x B x E), as B x heads x L x d."""
    e, nh = mha.embed_dim, mha.num_heads
    w = mha.in_proj_weight[which * e:(which + 1) * e]
    b = mha.in_proj_bias[which * e:(which + 1) * e] if mha.in_proj_bias is not None else None
    y = F.linear(x, w, b)                                                    # L x B x E
    return y.reshape(y.shape[0], y.shape[1], nh, e // nh).permute(1, 2, 0, 3)   # B x heads x L x d


def _attach(site: HookSite, emit: Emit, detach: bool) -> list[RemovableHandle]:
    path, layer = site.path, site.module
    mha: nn.MultiheadAttention = layer.attn
    scratch: dict[str, object] = {}
    calls = CallCounter(path)

    def inner(m: nn.Module, args: tuple, kwargs: dict, output: tuple) -> None:
        get = lambda i, n: args[i] if len(args) > i else kwargs[n]          # noqa: E731
        scratch.update(query=get(0, "query"), key=get(1, "key"), value=get(2, "value"), output=output)

    def post(m: nn.Module, args: tuple, kwargs: dict, output: torch.Tensor) -> None:
        s = dict(scratch)
        scratch.clear()
        hw = args[1] if len(args) > 1 else kwargs["hw_shape"]
        h, w = int(hw[0]), int(hw[1])
        if not mha.batch_first and s["query"].shape[0] != h * w:
            raise ValueError(f"{path}: expected {h * w} queries (seq-first) for hw_shape {hw}, "
                             f"got {tuple(s['query'].shape)}")
        with torch.no_grad():
            k = _project(mha, s["key"].detach(), 1)                         # B x heads x S x d
            v = _project(mha, s["value"].detach(), 2)                       # B x heads x S x d
            rows = check_rows(h * w)                                        # all, or a sample on big grids
            qr = _project(mha, s["query"].detach()[rows], 0)                # B x heads x R x d
            attn = torch.softmax(qr @ k.transpose(-1, -2) / qr.shape[-1] ** 0.5, dim=-1)  # B x heads x R x S
            heads = attn @ v                                                # B x heads x R x d
            out = mha.out_proj(heads.permute(2, 0, 1, 3).reshape(len(rows), qr.shape[0], -1))  # R x B x E
        returned_out, returned_weights = s["output"]
        if returned_weights is not None:
            verify(path, "head-averaged attention weights (returned by nn.MultiheadAttention)",
                   attn.mean(1), returned_weights[:, rows])
        verify(path, "attention output (out_proj of the heads' weighted values)", out, returned_out[rows])
        sr = int(getattr(m, "sr_ratio", 1))
        name = calls.next()
        # The queries are projected when a pixel is read: keep the layer's input (B x HW x E) and the weights.
        factors = {"query_input": s["query"].detach().transpose(0, 1), "key": k}
        e = mha.embed_dim
        bias = mha.in_proj_bias[:e].detach().clone() if mha.in_proj_bias is not None else None
        meta = {"sr": sr, "reduced": (h // sr, w // sr), "heads": mha.num_heads,
                "wq": mha.in_proj_weight[:e].detach().clone(), "bq": bias}      # E x E: a copy, not the live layer
        publish(emit, detach, name, KIND, (h, w), factors, _read, meta)

    return [mha.register_forward_hook(inner, with_kwargs=True), layer.register_forward_hook(post, with_kwargs=True)]


def _rows(record: SiteRecord, batch: int, cell: tuple[int, int]) -> torch.Tensor:
    """heads x S: each head's exact row over the reduced key cells (float64)."""
    h, w = record.grid
    x = record.factors["query_input"][batch, cell[0] * w + cell[1]]            # E, the layer's input at p
    q = F.linear(x, record.meta["wq"], record.meta["bq"]).double()            # E
    q = q.reshape(record.meta["heads"], -1)                                    # heads x d
    k = record.factors["key"][batch].double()                                  # heads x S x d
    return torch.softmax(torch.einsum("hd,hsd->hs", q, k) / q.shape[-1] ** 0.5, dim=-1)


def _spread(record: SiteRecord, row: torch.Tensor) -> torch.Tensor:
    """A row over the reduced cells, spread uniformly over each one's sr x sr patch: h x w."""
    (h, w), sr, (rh, rw) = record.grid, record.meta["sr"], record.meta["reduced"]
    out = torch.zeros(h, w, dtype=torch.float64)
    patch = row.reshape(rh, rw).repeat_interleave(sr, 0).repeat_interleave(sr, 1) / (sr * sr)   # rh*sr x rw*sr
    out[:rh * sr, :rw * sr] = patch                                            # cells the conv never reads: 0
    return out


def _convention(record: SiteRecord, n_heads: int) -> str:
    parts = []
    if n_heads > 1:
        parts.append(f"the mean of {n_heads} heads")
    if record.meta["sr"] > 1:
        sr = record.meta["sr"]
        parts.append(f"each reduced key cell spread uniformly over its {sr}x{sr} patch (the sr conv mixes them)")
    return "; ".join(parts)


def _read(record: SiteRecord, batch: int, cell: tuple[int, int]) -> ContextMap:
    """Head-averaged row, spread over the sr x sr patches; exact for one head and sr = 1."""
    rows = _rows(record, batch, cell)
    conv = _convention(record, rows.shape[0])
    return row_map(_spread(record, rows.mean(0)), record.grid, cell, record, exact=not conv, convention=conv,
                   heads=rows.shape[0], sr_ratio=record.meta["sr"])


def head_map(record: SiteRecord, batch: int, cell: tuple[int, int], head: int) -> ContextMap:
    """One head's row (exact over the reduced cells; spread over patches when sr > 1)."""
    rows = _rows(record, batch, cell)
    conv = _convention(record, 1)
    return row_map(_spread(record, rows[head]), record.grid, cell, record, exact=not conv, convention=conv,
                   head=head, sr_ratio=record.meta["sr"])


# -- the producer interface (ocrviz.context) ------------------------------------------------------
def find_sites(cache: Cache) -> list[Site]:
    """This family's captured records in ``cache``, as sites (forward order is the caller's)."""
    return sites_of(cache, KIND)


def read(cache: Cache, site: Site, cell: tuple[int, int], batch_index: int = 0) -> ContextMap:
    """Pixel ``cell``'s map at ``site``, computed from the stored factors."""
    return read_site(cache, site, cell, batch_index)


# -- across the layers of one stage: rollout (a stated convention) ------------------------------------
ROLLOUT = ("the layers of one MiT stage composed by attention rollout (A_n ... A_1, each layer's map as drawn: "
           "heads averaged, reduced key cells spread over their sr x sr patches); residuals, MLPs and value "
           "projections ignored")


def layer_matrix(record: SiteRecord, batch: int = 0) -> torch.Tensor:
    """HW x HW float64: row q = cell q's map at this layer, as ``_read`` draws it (heads averaged, spread)."""
    (h, w), sr, (rh, rw) = record.grid, record.meta["sr"], record.meta["reduced"]
    x = record.factors["query_input"][batch]                                   # HW x E
    q = F.linear(x, record.meta["wq"], record.meta["bq"]).double()            # HW x E
    q = q.reshape(h * w, record.meta["heads"], -1).transpose(0, 1)             # heads x HW x d
    k = record.factors["key"][batch].double()                                  # heads x S x d
    rows = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1).mean(0)   # HW x S
    grid = rows.reshape(h * w, rh, rw).repeat_interleave(sr, 1).repeat_interleave(sr, 2) / (sr * sr)
    out = torch.zeros(h * w, h, w, dtype=torch.float64)
    out[:, :rh * sr, :rw * sr] = grid                                          # HW x rh*sr x rw*sr
    return out.reshape(h * w, h * w)


def stages(cache: Cache) -> list[list[SiteRecord]]:
    """The captured MiT layers grouped by stage: consecutive records on one grid, forward order."""
    out: list[list[SiteRecord]] = []
    for rec in getattr(cache, "context_sites", ()):
        if rec.kind != KIND:
            continue
        if out and out[-1][-1].grid == rec.grid:
            out[-1].append(rec)
        else:
            out.append([rec])
    return out


def stage_rollout(cache: Cache, cell: tuple[int, int], stage: int, batch_index: int = 0) -> ContextMap:
    """Cell ``cell`` (on stage ``stage``'s grid, 0 = the first, finest) after every layer of that stage,
    composed by rollout: row ``cell`` of M = A_n ... A_1 (``ROLLOUT``, a convention: never ``exact``).

    Within a stage every layer keeps the grid, so no grid mapping is needed; across stages the
    overlap patch embedding (a strided conv) changes the grid and is not composed here.
    """
    groups = stages(cache)
    if not 0 <= stage < len(groups):
        raise ValueError(f"stage={stage}; this cache holds {len(groups)} MiT stages "
                         f"({[g[0].grid for g in groups]}): give 0..{len(groups) - 1}")
    records = groups[stage]
    h, w = records[0].grid
    if not (0 <= cell[0] < h and 0 <= cell[1] < w):
        raise ValueError(f"cell={tuple(cell)} is outside stage {stage}'s {h} x {w} grid")
    row = torch.zeros(h * w, dtype=torch.float64)
    row[cell[0] * w + cell[1]] = 1.0
    for rec in reversed(records):                                              # row @ A_n ... A_1
        row = row @ layer_matrix(rec, batch_index)
    return row_map(row, (h, w), tuple(cell), records[-1], exact=False, convention=ROLLOUT,
                   layers=tuple(r.name for r in records))


PATCH_EMBED = ("across stages, each overlap patch embedding (a k x k conv, stride s, padding p) maps a cell to the "
               "k x k cells of the previous stage that its conv reads, 1/k^2 each (taps on the padding: off the grid)")


def patch_embed_matrix(grid_in: tuple[int, int], grid_out: tuple[int, int], k: int, stride: int,
                       pad: int) -> torch.Tensor:
    """(h_out w_out) x (h_in w_in) float64: row q = output cell q's k x k taps on the input grid, 1/k^2 each;
    taps on the padding are left out, so a row sums to (taps in the grid) / k^2."""
    (hi, wi), (ho, wo) = grid_in, grid_out
    out = torch.zeros(ho, wo, hi, wi, dtype=torch.float64)
    for r in range(ho):
        for c in range(wo):
            r0, c0 = r * stride - pad, c * stride - pad
            out[r, c, max(r0, 0):max(min(r0 + k, hi), 0), max(c0, 0):max(min(c0 + k, wi), 0)] = 1.0 / (k * k)
    return out.reshape(ho * wo, hi * wi)


def patch_embed_of(cache: Cache, record: SiteRecord) -> tuple[int, int, int]:
    """(kernel, stride, padding) of the conv that starts ``record``'s stage: MMSeg's MixVisionTransformer
    keeps each stage as ``layers.<i>`` = [PatchEmbed (``projection``), its layers, norm]."""
    stage_path = ".".join(record.name.split(".")[:-3])                         # backbone.layers.<i>
    try:
        conv = cache.module(f"{stage_path}.0").projection
        k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    except (ValueError, AttributeError, IndexError, TypeError) as e:
        raise ValueError(f"{record.name}: expected MMSeg's MiT layout (<stage>.0.projection, a Conv2d with int "
                         f"padding, before <stage>.1.<n>.attn); could not read it ({e})") from e
    return int(k), int(s), int(p)


def rollout(cache: Cache, cell: tuple[int, int], batch_index: int = 0) -> ContextMap:
    """Cell ``cell`` of the last MiT stage traced back to the first stage's grid: within each stage the
    layers by rollout (``ROLLOUT``), between stages each overlap patch embedding by ``PATCH_EMBED``;
    both conventions, so never ``exact``.  Mass on the padding of a patch embedding is ``off_grid``.
    The map lies on the first stage's grid; ``cell`` (and ``extra["cell_grid"]``) on the last one's."""
    groups = stages(cache)
    if not groups:
        raise ValueError("rollout needs MiT attention layers in the cache (EfficientMultiheadAttention); "
                         "capture a SegFormer model with ocrviz.run_with_cache")
    h, w = groups[-1][0].grid
    if not (0 <= cell[0] < h and 0 <= cell[1] < w):
        raise ValueError(f"cell={tuple(cell)} is outside the last stage's {h} x {w} grid")
    row = torch.zeros(h * w, dtype=torch.float64)
    row[cell[0] * w + cell[1]] = 1.0
    for i in range(len(groups) - 1, -1, -1):
        for rec in reversed(groups[i]):
            row = row @ layer_matrix(rec, batch_index)
        if i > 0:
            k, s, p = patch_embed_of(cache, groups[i][0])
            row = row @ patch_embed_matrix(groups[i - 1][0].grid, groups[i][0].grid, k, s, p)
    first = groups[0][0]
    return row_map(row, first.grid, tuple(cell), first, exact=False, convention=f"{ROLLOUT}; {PATCH_EMBED}",
                   off_grid=max(0.0, 1.0 - float(row.sum())), stages=len(groups), cell_grid=(h, w))
