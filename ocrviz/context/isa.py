"""Interlaced sparse self-attention (ISA): a global relation, then a local one, on batch-reshaped grids.

Recognised: MMSeg's ``ISAHead`` (``global_relation``, ``local_relation``,
``down_factor``).  The head pads the h x w grid to whole groups of
loc_h x loc_w cells, writes padded cell (y, x) as (gh, lh, gw, lw) with
y = gh * loc_h + lh, and

* global relation: the cells sharing one local offset (lh, lw) attend to each
  other, batch ``n * loc_h * loc_w`` over a glb_h x glb_w grid;
* local relation: the cells of one group (gh, gw) attend to each other,
  batch ``n * glb_h * glb_w`` over a loc_h x loc_w grid.

A source cell (gh', lh', gw', lw') reaches pixel p along exactly one path
(through p's group at offset (lh', lw')), so its weight is
local(p -> (lh', lw')) * global((lh', lw'): (gh, gw) -> (gh', gw')); these
sum to 1.  Padded cells that receive weight are the off-grid mass.  The
hooks keep both relations' query / key factors (the batch reshaping is
undone at read time) and check that each relation's context, recomputed
from them, is what MMSeg fed its ``output_project``.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..capture.cache import Cache
from ..capture.foreign import verify
from .sites import (CallCounter, Emit, HookSite, SiteRecord, class_names, join, publish, read_site, recorder, row_map,
                    sites_of)
from .types import ContextMap, Site

KIND = "isa"
ISA_CLASSES = frozenset({"ISAHead"})
RELATIONS = ("global_relation", "local_relation")


def find_modules(model: nn.Module) -> list[HookSite]:
    """MMSeg ISAHead modules, module order."""
    names = lambda path: (join(path, "features"),) + tuple(  # noqa: E731
        join(path, f"{r}.{f}") for r in RELATIONS for f in ("query", "key"))
    return [HookSite(path, m, KIND, _attach, names(path))
            for path, m in model.named_modules()
            if class_names(m) & ISA_CLASSES and all(hasattr(m, a) for a in (*RELATIONS, "down_factor", "in_conv"))]


def _attach(site: HookSite, emit: Emit, detach: bool) -> list[RemovableHandle]:
    path, head = site.path, site.module
    scratch: dict[str, list] = {}
    calls = CallCounter(path)
    handles = [head.in_conv.register_forward_hook(recorder(scratch, "in_conv"))]
    for rel in RELATIONS:
        block = getattr(head, rel)
        for n in ("query_project", "key_project", "value_project"):
            handles.append(getattr(block, n).register_forward_hook(recorder(scratch, f"{rel}.{n}")))
        handles.append(block.output_project.register_forward_hook(recorder(scratch, f"{rel}.out", keep_input=True)))

    def post(out_conv: nn.Module, args: tuple, output: torch.Tensor) -> None:
        m = head
        s = {k: v[-1] for k, v in scratch.items()}
        scratch.clear()
        n, _, h, w = s["in_conv"].shape
        factors: dict[str, torch.Tensor] = {}
        for rel in RELATIONS:
            block = getattr(m, rel)
            q_map, k_map, v_map = (s[f"{rel}.{p}"] for p in ("query_project", "key_project", "value_project"))
            bb, c, gh, gw = q_map.shape
            scale = block.channels ** -0.5 if block.matmul_norm else 1.0
            with torch.no_grad() if detach else torch.enable_grad():
                query = q_map.reshape(bb, c, gh * gw).transpose(1, 2)            # (n * groups) x cells x C
                key = k_map.reshape(bb, c, gh * gw)                              # (n * groups) x C x cells
                value = v_map.reshape(bb, v_map.shape[1], gh * gw).transpose(1, 2)
                sim = torch.softmax(scale * torch.matmul(query, key), dim=-1)
                context = torch.matmul(sim, value).transpose(1, 2).reshape(bb, -1, gh, gw)
            verify(join(path, rel), "context (softmax(query key) @ value, the input of output_project)",
                   context, s[f"{rel}.out_in"])
            factors[f"{rel}.query"], factors[f"{rel}.key"] = query, key
        name = calls.next()
        loc_h, loc_w = m.down_factor
        meta = {"loc": (loc_h, loc_w), "glb": (math.ceil(h / loc_h), math.ceil(w / loc_w)),
                "scales": tuple(getattr(m, r).channels ** -0.5 if getattr(m, r).matmul_norm else 1.0
                                for r in RELATIONS)}
        # The relations' batches are n * groups: the in_conv output (batch n) is stored first.
        factors = {"features": s["in_conv"], **factors}
        publish(emit, detach, name, KIND, (h, w), factors, _read, meta)

    # MMSeg calls decode_head.forward(x) directly (no module hooks on the head): out_conv runs last.
    handles.append(head.out_conv.register_forward_hook(post))
    return handles


def _read(record: SiteRecord, batch: int, cell: tuple[int, int]) -> ContextMap:
    """Exact: local weight times global weight along each source cell's one path; padding is off-grid."""
    (loc_h, loc_w), (glb_h, glb_w) = record.meta["loc"], record.meta["glb"]
    s_glb, s_loc = record.meta["scales"]
    h, w = record.grid
    top, left = (glb_h * loc_h - h) // 2, (glb_w * loc_w - w) // 2      # MMSeg pads pad // 2 before
    gy, ly = divmod(cell[0] + top, loc_h)
    gx, lx = divmod(cell[1] + left, loc_w)
    f = record.factors
    # Local relation: batch (n, gy, gx), query at offset (ly, lx), over the loc_h * loc_w offsets.
    b_loc = (batch * glb_h + gy) * glb_w + gx
    q = f["local_relation.query"][b_loc, ly * loc_w + lx].double()                   # C
    local = torch.softmax(s_loc * (q @ f["local_relation.key"][b_loc].double()), 0)  # L offsets
    # Global relation: for every offset (ly', lx'), batch (n, ly', lx'), query at group (gy, gx).
    b_glb = batch * loc_h * loc_w + torch.arange(loc_h * loc_w)                      # L
    qg = f["global_relation.query"][b_glb, gy * glb_w + gx].double()                 # L x C
    kg = f["global_relation.key"][b_glb].double()                                    # L x C x G
    glob = torch.softmax(s_glb * torch.einsum("lc,lcg->lg", qg, kg), dim=-1)         # L x G groups
    paths = local[:, None] * glob                                                    # L x G
    padded = paths.reshape(loc_h, loc_w, glb_h, glb_w).permute(2, 0, 3, 1)           # glb_h x loc_h x glb_w x loc_w
    padded = padded.reshape(glb_h * loc_h, glb_w * loc_w)                            # Hp x Wp
    inside = padded[top:top + h, left:left + w]                                      # h x w
    off = float(padded.sum() - inside.sum())
    return row_map(inside, (h, w), cell, record, off_grid=off, sources=None)


# -- the producer interface (ocrviz.context) ------------------------------------------------------
def find_sites(cache: Cache) -> list[Site]:
    """This family's captured records in ``cache``, as sites (forward order is the caller's)."""
    return sites_of(cache, KIND)


def read(cache: Cache, site: Site, cell: tuple[int, int], batch_index: int = 0) -> ContextMap:
    """Pixel ``cell``'s map at ``site``, computed from the stored factors."""
    return read_site(cache, site, cell, batch_index)
