"""Self-attention context: every pixel attends to every pixel (HW x HW), read one row at a time.

Recognised modules (duck typing on class names anywhere in the MRO):

* mmcv ``NonLocal2d`` (MMSeg's NLHead), mode ``embedded_gaussian`` or
  ``gaussian``, no ``sub_sample``: row p = softmax_q(scale * theta(x)_p . phi(x)_q),
  scale = inter_channels ** -0.5 when ``use_scale`` (embedded only).
* MMSeg ``DisentangledNonLocal2d`` (DNLHead): theta and phi are whitened *in
  place* after theta / phi return (so their outputs are copied at hook time),
  the logits are divided by ``temperature``, and a unary softmax mask m is
  added: ``conv_out(sum_q (row_pq + m_q) g_q)``.  Its map is
  (pairwise row + unary mask) / 2, the head's own weights over g halved so
  they sum to 1 (the legend says so: ``extra["scale_to_head"] = 2``).
* MMSeg ``SelfAttentionBlock`` subclasses without pooling: DANet's ``PAM``
  (``context`` = the input of its ``gamma``), or any with an ``out_project``.
  DANet's CAM mixes channels, not positions: it has no spatial context map.

Per call the hooks keep the factors (query B x HW x C, key B x C x HW, value
B x HW x Cv) and the module's own context (B x Cv x HW), and check that the
factors reproduce that context on SAMPLE evenly spaced rows (every row on
grids of up to SAMPLE cells), so capture costs at most SAMPLE / HW of the
module's own HW x HW work; reading a pixel's map checks that pixel's own row again,
so a drawn row is always one the module's output confirms.  A disagreement
raises :class:`CaptureMismatchError`.  The HW x HW matrix is never stored.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..capture.cache import Cache
from ..capture.foreign import verify
from .sites import (CallCounter, Emit, HookSite, SiteRecord, class_names, join, publish, read_site, recorder, row_map,
                    sites_of, ocrviz_head_logits)
from .types import ContextMap, Site

KIND = "self_attention"
NONLOCAL_CLASSES = frozenset({"NonLocal2d", "_NonLocalNd"})
DNL_CLASSES = frozenset({"DisentangledNonLocal2d"})
SA_BLOCK_CLASSES = frozenset({"SelfAttentionBlock"})
PAM_CLASSES = frozenset({"PAM"})
SAMPLE = 256   # rows checked at capture, evenly spaced (all of them on smaller grids); each row read is checked


def find_modules(model: nn.Module) -> list[HookSite]:
    """NonLocal2d / DNL blocks and plain MMSeg SelfAttentionBlocks (PAM, or with out_project), module order."""
    sites = []
    for path, module in model.named_modules():
        names = class_names(module)
        if names & NONLOCAL_CLASSES and hasattr(module, "theta") or names & DNL_CLASSES:
            sites.append(HookSite(path, module, KIND, _attach_nonlocal, _names(path), _nonlocal_unsupported(module)))
        elif names & SA_BLOCK_CLASSES and "ObjectAttentionBlock" not in names and _plain_block(module):
            sites.append(HookSite(path, module, KIND, _attach_block, _names(path)))
    return sites


def _names(path: str) -> tuple[str, ...]:
    return (join(path, "query"), join(path, "key"))


def _plain_block(module: nn.Module) -> bool:
    # ANN (pooled keys) and ISA (batch-reshaped) blocks are other families' sites.
    return module.query_downsample is None and module.key_downsample is None and (
        bool(class_names(module) & PAM_CLASSES) or module.out_project is not None)


def _nonlocal_unsupported(module: nn.Module) -> str | None:
    if getattr(module, "sub_sample", False):
        return "sub_sample=True (keys max-pooled)"
    if module.mode not in ("embedded_gaussian", "gaussian"):
        return f"mode={module.mode!r} (weights that are not a softmax over positions)"
    return None


# -- NonLocal2d and DNL ------------------------------------------------------------------------
def _attach_nonlocal(site: HookSite, emit: Emit, detach: bool) -> list[RemovableHandle]:
    path, block = site.path, site.module
    dnl = bool(class_names(block) & DNL_CLASSES)
    scratch: dict[str, list] = {}
    calls = CallCounter(path)
    handles: list[RemovableHandle] = []

    def keep(key: str) -> Any:
        # DNL whitens theta / phi in place after they return: copy them at hook time.
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            scratch.setdefault(key, []).append(output.clone() if dnl else output)
        return hook

    gaussian = block.mode == "gaussian"
    if not gaussian:
        handles += [block.theta.register_forward_hook(keep("theta")), block.phi.register_forward_hook(keep("phi"))]
    handles.append(block.g.register_forward_hook(recorder(scratch, "g")))
    handles.append(block.conv_out.register_forward_hook(recorder(scratch, "conv_out", keep_input=True)))
    if dnl:
        handles.append(block.conv_mask.register_forward_hook(recorder(scratch, "mask")))

    def post(mod: nn.Module, args: tuple, output: torch.Tensor) -> None:
        s = {k: v[-1] for k, v in scratch.items()}
        scratch.clear()
        x = args[0]
        b, c, h, w = x.shape
        with torch.no_grad() if detach else torch.enable_grad():
            if gaussian:
                theta = phi = x.detach() if detach else x
                scale = 1.0
            else:
                theta, phi = s["theta"], s["phi"]
                scale = mod.inter_channels ** -0.5 if mod.use_scale and mod.mode == "embedded_gaussian" else 1.0
            query = theta.reshape(b, theta.shape[1], h * w).transpose(1, 2)   # B x HW x C
            key = phi.reshape(b, phi.shape[1], h * w)                          # B x C x HW
            if dnl:
                query = query - query.mean(dim=-2, keepdim=True)                # whitened as DNL does
                key = key - key.mean(dim=-1, keepdim=True)
                scale = scale / mod.temperature
            g = s["g"].reshape(b, -1, h * w).transpose(1, 2)                   # B x HW x Cg
            unary = F.softmax(s["mask"].reshape(b, h * w), dim=-1) if dnl else None   # B x HW
            actual = s["conv_out_in"].reshape(b, -1, h * w)                   # B x Cg x HW, the module's own
            rows = check_rows(h * w)
            y = _attend_rows(query, key, g, scale, rows, unary)               # B x rows x Cg
        verify(path, "conv_out input (softmax(theta phi) @ g" + (" + unary" if dnl else "") + ")",
               y.transpose(1, 2), actual[:, :, rows])
        verify(path, "block output (x + conv_out(y))", x + s["conv_out"], output)
        name = calls.next()
        factors = {"query": query, "key": key, "value": g, "context": actual}
        if unary is not None:
            factors["unary"] = unary
        publish(emit, detach, name, KIND, (h, w), factors, _read_dnl if dnl else _read, {"scale": scale})

    handles.append(block.register_forward_hook(post))
    return handles


def check_rows(hw: int) -> torch.Tensor:
    """Rows checked at capture: min(hw, SAMPLE) evenly spaced, so capture costs at most SAMPLE / HW
    of the module's own attention."""
    return torch.linspace(0, hw - 1, min(hw, SAMPLE)).round().long()


def _attend_rows(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float, rows: torch.Tensor,
                 unary: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(scale * query[rows] @ key) (+ unary) @ value: B x len(rows) x Cv."""
    weights = F.softmax(scale * torch.matmul(query[:, rows], key), dim=-1)    # B x rows x HW
    if unary is not None:
        weights = weights + unary[:, None, :]
    return torch.matmul(weights, value)


def attention_row(record: SiteRecord, batch: int, cell: tuple[int, int]) -> torch.Tensor:
    """Pixel ``cell``'s attention row over the h*w cells (float64), from the stored factors."""
    h, w = record.grid
    q = record.factors["query"][batch, cell[0] * w + cell[1]]                # C
    logits = q @ record.factors["key"][batch]                                # HW, the module's precision
    return F.softmax(record.meta["scale"] * logits.double(), dim=-1)


def _confirm(record: SiteRecord, batch: int, cell: tuple[int, int], weights: torch.Tensor) -> None:
    """The clicked row, applied to the stored values, must give the module's own context at that pixel."""
    p = cell[0] * record.grid[1] + cell[1]
    value = record.factors["value"][batch]                                   # HW x Cv
    verify(f"{record.name} at cell {cell}", "context of the clicked pixel (its row @ value)",
           weights.to(value.dtype) @ value, record.factors["context"][batch, :, p])


def _read(record: SiteRecord, batch: int, cell: tuple[int, int]) -> ContextMap:
    """The exact attention row of ``cell``."""
    row = attention_row(record, batch, cell)
    _confirm(record, batch, cell, row)
    return row_map(row, record.grid, cell, record)


def _read_dnl(record: SiteRecord, batch: int, cell: tuple[int, int]) -> ContextMap:
    """DNL: (whitened pairwise row + unary mask) / 2, the head's own weights over g, halved."""
    pair = attention_row(record, batch, cell)
    unary = record.factors["unary"][batch].double()
    _confirm(record, batch, cell, pair + unary)
    return row_map((pair + unary) / 2, record.grid, cell, record, scale_to_head=2.0)


# -- MMSeg SelfAttentionBlock (PAM) -------------------------------------------------------------
def _attach_block(site: HookSite, emit: Emit, detach: bool) -> list[RemovableHandle]:
    path, block = site.path, site.module
    pam = bool(class_names(block) & PAM_CLASSES)
    scratch: dict[str, list] = {}
    calls = CallCounter(path)
    out_mod = block.gamma if pam else block.out_project
    handles = [getattr(block, n).register_forward_hook(recorder(scratch, n))
               for n in ("query_project", "key_project", "value_project")]
    handles.append(out_mod.register_forward_hook(recorder(scratch, "out", keep_input=True)))

    def post(mod: nn.Module, args: tuple, output: torch.Tensor) -> None:
        s = {k: v[-1] for k, v in scratch.items()}
        scratch.clear()
        q_map, key, value = s["query_project"], s["key_project"], s["value_project"]
        b, _, h, w = q_map.shape
        with torch.no_grad() if detach else torch.enable_grad():
            query = q_map.reshape(b, q_map.shape[1], h * w).transpose(1, 2)   # B x HW x C
            key = key.reshape(b, key.shape[1], -1)                             # B x C x HW
            value = value.reshape(b, value.shape[1], -1).transpose(1, 2)       # B x HW x Cv
            scale = mod.channels ** -0.5 if mod.matmul_norm else 1.0
            actual = s["out_in"].reshape(b, -1, h * w)                         # B x Cv x HW, the module's own
            rows = check_rows(h * w)
            context = _attend_rows(query, key, value, scale, rows)            # B x rows x Cv
        verify(path, f"context (softmax(query key) @ value, the input of {'gamma' if pam else 'out_project'})",
               context.transpose(1, 2), actual[:, :, rows])
        if pam:
            verify(path, "PAM output (gamma(context) + x)", s["out"] + args[0], output)
        name = calls.next()
        factors = {"query": query, "key": key, "value": value, "context": actual}
        publish(emit, detach, name, KIND, (h, w), factors, _read, {"scale": scale})

    handles.append(block.register_forward_hook(post))
    return handles


# -- the producer interface (ocrviz.context) ------------------------------------------------------
HOOK_ROLES = ("query", "key", "value", "context")   # ocrviz heads: <path>.hook_<prefix><role>
# ocrviz heads whose logit scale is not a ``scale`` attribute: DANet's PAM has none (softmax(q . k)).
PREFIX_SCALE = {"pam_": 1.0}
CAM_NOTE = ("DANet's channel attention (CAM) mixes channels, never pixels: pixel p's CAM output reads only "
            "p's own features, so it has no spatial context map; this map is the PAM branch's")


def _hook_sites(cache: Cache) -> list[tuple[Site, str]]:
    """(site, prefix) of ocrviz heads whose HookPoints hold q, k, v and the context (see find_sites)."""
    names = cache.names()
    out = []
    for name in names:
        path, _, leaf = name.rpartition(".")
        if not (leaf.startswith("hook_") and leaf.endswith("query")):
            continue
        prefix = leaf[len("hook_"):-len("query")]                           # "" or e.g. "pam_"
        hooks = {r: f"{path}.hook_{prefix}{r}" for r in HOOK_ROLES}
        if (not all(n in names for n in hooks.values()) or f"{path}.hook_sim_map" in names   # OCR's block
                or _scale(cache, path, prefix) is None):
            continue
        q, k, ctx = (cache[hooks[r]] for r in ("query", "key", "context"))
        h, w = ctx.shape[-2:]
        # pixel-to-pixel: keys over the same h*w cells as the queries (OCR's keys are over K regions;
        # criss-cross passes keep B x C x h x w maps)
        if q.dim() == 3 and k.dim() == 3 and q.shape[1] == k.shape[-1] == h * w:
            out.append((Site(path=path, kind=KIND, hooks=hooks, grid=(int(h), int(w)),
                             order=max(names.index(n) for n in hooks.values())), prefix))
    return out


def find_sites(cache: Cache) -> list[Site]:
    """This family's sites: hooked records, and ocrviz heads whose HookPoints hold the same factors.

    An ocrviz head qualifies with ``hook_<p>query`` (B x HW x Ck), ``hook_<p>key``
    (B x Ck x HW), ``hook_<p>value`` (B x HW x C), ``hook_<p>context`` (B x C x h x w,
    attention @ value) under one path, ``<p>`` empty (``models.self_attention``: a
    ``scale`` attribute holds the logit scale) or ``pam_`` (``models.danet``: no scale).
    """
    return sites_of(cache, KIND) + [s for s, _ in _hook_sites(cache)]


def _module(cache: Cache, path: str) -> nn.Module | None:
    try:
        return cache.module(path)
    except (ValueError, AttributeError):
        return None


def _scale(cache: Cache, path: str, prefix: str) -> float | None:
    if prefix in PREFIX_SCALE:
        return PREFIX_SCALE[prefix]
    module = _module(cache, path)
    return None if module is None or prefix or not hasattr(module, "scale") else float(module.scale)


def _hook_record(cache: Cache, site: Site) -> SiteRecord:
    prefix = site.hooks["query"].rpartition(".hook_")[2][: -len("query")]
    context = cache[site.hooks["context"]]
    factors = {"query": cache[site.hooks["query"]], "key": cache[site.hooks["key"]],
               "value": cache[site.hooks["value"]],
               "context": context.reshape(context.shape[0], context.shape[1], -1)}     # B x C x HW
    note = CAM_NOTE if prefix == "pam_" and f"{site.path}.hook_cam_attention" in cache.names() else ""
    return SiteRecord(site.path, KIND, site.grid, factors, _read_hook, {"scale": _scale(cache, site.path, prefix),
                                                                        "note": note})


def _read_hook(record: SiteRecord, batch: int, cell: tuple[int, int]) -> ContextMap:
    row = attention_row(record, batch, cell)
    _confirm(record, batch, cell, row)
    extra = {"note": record.meta["note"]} if record.meta["note"] else {}
    return row_map(row, record.grid, cell, record, **extra)


def _is_hook_site(site: Site) -> bool:
    return set(site.hooks) == set(HOOK_ROLES) and ".hook_" in site.hooks["query"]


def read(cache: Cache, site: Site, cell: tuple[int, int], batch_index: int = 0) -> ContextMap:
    """Pixel ``cell``'s exact row at ``site``, computed from the stored factors and checked against the context."""
    if not _is_hook_site(site):
        return read_site(cache, site, cell, batch_index)
    return _hook_record(cache, site).map(batch_index, cell)


def masses(cache: Cache, site: Site, frac: np.ndarray, batch_index: int = 0) -> np.ndarray:
    """HW x O: every cell's exact row's mass on each of the O cell maps ``frac`` (O x h x w).

    On ocrviz heads the whole HW x HW attention is formed once (h*w = 2048 on ToyCity: 32 MiB) and
    checked against the captured context for every cell; hooked records read each cell's row.
    """
    if not _is_hook_site(site):
        h, w = site.grid
        rows = [read_site(cache, site, (q // w, q % w), batch_index).weights.ravel() for q in range(h * w)]
        return np.stack(rows) @ frac.reshape(len(frac), -1).T                   # HW x O
    rec = _hook_record(cache, site)
    q, k, v = (rec.factors[r][batch_index] for r in ("query", "key", "value"))
    att = F.softmax(rec.meta["scale"] * (q @ k).double(), dim=-1)               # HW x HW
    verify(f"{site.path} (every cell)", "context (attention @ value)", (att.to(v.dtype) @ v).T,
           rec.factors["context"][batch_index])
    return att.detach().cpu().numpy() @ np.asarray(frac, np.float64).reshape(len(frac), -1).T  # HW x O


def head_logits(cache: Cache, site: Site, batch_index: int = 0) -> torch.Tensor | None:
    """K x h x w main logits for ocrviz heads (``sites.ocrviz_head_logits``); None for hooked foreign trees."""
    return ocrviz_head_logits(cache, batch_index) if _is_hook_site(site) else None
