"""Pooling bins (PSPNet, ANN): context from average-pooled bins.

Recognised: MMSeg's ``PPM`` (PSPHead; ``pool_scales`` such as (1, 2, 3, 6),
branches ``Sequential(AdaptiveAvgPool2d(s), ConvModule 1x1)``, each output
resized bilinearly to the input grid), and ANN's attention blocks (MMSeg's
``SelfAttentionBlock`` whose ``key_downsample`` is a ``PPMConcat``: AFNB and
APNB stages, keys and values pooled to 1 + 9 + 36 + 64 = 110 bins).

ANN is exact: pixel p attends to the 110 bins (softmax row), and each bin's
value is the average of ``value_project`` (a 1x1 conv, linear) over the bin's
cells, so p's weights over cells are sum_bins sim(p, bin) * uniform(bin).
APNB shares its query and key projection (one module called twice per
forward), and ``PPMConcat`` pools keys and then values (called twice): the
hooks keep every call in order.

PSP:

What is exact: scale s reaches pixel p through the bins' bilinear weights
U_s[p] (s*s numbers) times each bin's uniform average over its cells P_s.
Both are linear and measured on the module itself (the pooling and the resize
applied to one-hot inputs); per call the hooks check that P_s reproduces the
module's pooled bins and U_s its upsampled outputs.  What is a convention:
the 1x1 conv + BN + ReLU per bin acts on features, and the head's 3x3
bottleneck mixes the scales (and the pixel's own feature) with learned
weights, so the map gives each scale an equal share, 1 / len(pool_scales).
"""
from __future__ import annotations

import functools
import weakref

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..capture.cache import Cache
from ..capture.foreign import verify
from .sites import (CallCounter, Emit, HookSite, SiteRecord, class_names, join, publish, read_site, row_map, sites_of,
                    ocrviz_head_logits)
from .types import ContextMap, Site

KIND = "pooling_bins"
PPM_CLASSES = frozenset({"PPM"})
ANN_POOL_CLASSES = frozenset({"PPMConcat"})
CONVENTION = ("each pooling scale weighted equally (the bottleneck mixes them by learned weights); within a "
              "scale, exact: the bins' bilinear weights times each bin's uniform average")


def find_modules(model: nn.Module) -> list[HookSite]:
    """MMSeg PPM modules and ANN attention blocks (keys pooled by a PPMConcat), module order."""
    sites = []
    for path, m in model.named_modules():
        if class_names(m) & PPM_CLASSES and hasattr(m, "pool_scales") and isinstance(m, nn.ModuleList):
            sites.append(HookSite(path, m, KIND, _attach, (join(path, "features"),)))
        elif ("SelfAttentionBlock" in class_names(m)
              and class_names(getattr(m, "key_downsample", None) or m) & ANN_POOL_CLASSES):
            bad = "query_downsample (query_scale > 1)" if m.query_downsample is not None else None
            sites.append(HookSite(path, m, KIND, _attach_ann, (join(path, "query"), join(path, "key")), bad))
    return sites


def pool_matrix(scale: int, grid: tuple[int, int], dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """P: s*s x HW, AdaptiveAvgPool2d(scale) applied to the HW one-hot cells (each row sums to 1)."""
    h, w = grid
    eye = torch.eye(h * w, dtype=dtype).reshape(h * w, 1, h, w)              # HW one-hot images
    return F.adaptive_avg_pool2d(eye, scale).reshape(h * w, scale * scale).T  # s*s x HW


def up_matrix(scale: int, grid: tuple[int, int], align_corners: bool,
              dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """U: HW x s*s, the bilinear resize of the s*s one-hot bins to the grid (each row sums to 1)."""
    n = scale * scale
    eye = torch.eye(n, dtype=dtype).reshape(n, 1, scale, scale)              # one-hot bins
    up = F.interpolate(eye, size=grid, mode="bilinear", align_corners=align_corners)  # s*s x 1 x h x w
    return up.reshape(n, -1).T                                               # HW x s*s


def _attach(site: HookSite, emit: Emit, detach: bool) -> list[RemovableHandle]:
    path, ppm = site.path, site.module
    scratch: dict[str, list] = {}
    calls = CallCounter(path)
    handles = []
    for i, branch in enumerate(ppm):
        handles.append(branch[0].register_forward_hook(_keep(scratch, f"pool{i}")))
        handles.append(branch.register_forward_hook(_keep(scratch, f"bins{i}")))

    def post(m: nn.Module, args: tuple, output: list) -> None:
        s = {k: v[-1] for k, v in scratch.items()}
        scratch.clear()
        x = args[0]
        b, c, h, w = x.shape
        factors: dict[str, torch.Tensor] = {}
        for i, scale in enumerate(m.pool_scales):
            pool = pool_matrix(scale, (h, w), x.dtype)                          # s*s x HW
            up = up_matrix(scale, (h, w), m.align_corners, x.dtype)             # HW x s*s
            with torch.no_grad():
                pooled = torch.einsum("bcn,kn->bck", x.detach().reshape(b, c, h * w), pool)   # B x C x s*s
                upsampled = torch.einsum("bck,nk->bcn", s[f"bins{i}"].detach().reshape(b, -1, scale * scale), up)
            verify(path, f"pooled bins of scale {scale} (average over each bin's cells)",
                   pooled.reshape(b, c, scale, scale), s[f"pool{i}"])
            verify(path, f"upsampled scale-{scale} context (bilinear weights of the bins)",
                   upsampled.reshape(b, -1, h, w), output[i])
            factors[f"pool{scale}"], factors[f"up{scale}"] = pool, up
        name = calls.next()
        factors["features"] = x                                                  # the PPM's input, B x C x h x w
        publish(emit, detach, name, KIND, (h, w), factors, _read, {"scales": tuple(m.pool_scales)},
                stored=("features",))

    handles.append(ppm.register_forward_hook(post))
    return handles


def _keep(scratch: dict[str, list], key: str):
    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        scratch.setdefault(key, []).append(output)
    return hook


def _read(record: SiteRecord, batch: int, cell: tuple[int, int]) -> ContextMap:
    """Equal shares per scale; within a scale the bilinear bin weights times uniform bins (exact)."""
    h, w = record.grid
    p = cell[0] * w + cell[1]
    scales = record.meta["scales"]
    total = torch.zeros(h * w, dtype=torch.float64)
    names, shares = [], []
    for s in scales:
        u = record.factors[f"up{s}"][p].double() / len(scales)                 # s*s bin shares
        total += u @ record.factors[f"pool{s}"].double()                        # HW
        names += [f"{s}x{s} bin ({i // s}, {i % s})" for i in range(s * s)]
        shares.append(u)
    return row_map(total, (h, w), cell, record, exact=False, convention=CONVENTION, sources=tuple(names),
                   source_weights=torch.cat(shares).numpy())


# -- ANN: attention over pooled bins ---------------------------------------------------------------
def _attach_ann(site: HookSite, emit: Emit, detach: bool) -> list[RemovableHandle]:
    path, block = site.path, site.module
    scratch: dict[str, list] = {}
    calls = CallCounter(path)
    shared = block.key_project is block.query_project
    mods = {"query_project": block.query_project, "value_project": block.value_project,
            "key_downsample": block.key_downsample}
    if not shared:
        mods["key_project"] = block.key_project
    handles = [m.register_forward_hook(_keep(scratch, n)) for n, m in mods.items()]
    handles.append(block.out_project.register_forward_hook(_keep_input(scratch, "out_in")))

    def post(m: nn.Module, args: tuple, output: torch.Tensor) -> None:
        s = dict(scratch)
        scratch.clear()
        # APNB: query_project ran on the queries, then (as key_project) on the keys.
        q_map, k_full = (s["query_project"][0], s["query_project"][1]) if shared else (
            s["query_project"][0], s["key_project"][0])
        k_pooled, v_pooled = s["key_downsample"]                               # keys, then values: B x C x 110
        v_full = s["value_project"][0]
        b, _, h, w = q_map.shape
        pool = torch.cat([pool_matrix(sc, (h, w), q_map.dtype) for sc in _scales(m)])   # 110 x HW
        with torch.no_grad() if detach else torch.enable_grad():
            verify(path, "pooled keys (each bin the average of its cells)",
                   torch.einsum("bcn,kn->bck", k_full.reshape(b, k_full.shape[1], h * w), pool), k_pooled)
            verify(path, "pooled values (each bin the average of its cells)",
                   torch.einsum("bcn,kn->bck", v_full.reshape(b, v_full.shape[1], h * w), pool), v_pooled)
            query = q_map.reshape(b, q_map.shape[1], h * w).transpose(1, 2)     # B x HW x C
            scale = m.channels ** -0.5 if m.matmul_norm else 1.0
            sim = torch.softmax(scale * torch.matmul(query, k_pooled), dim=-1)  # B x HW x 110
            context = torch.matmul(sim, v_pooled.transpose(1, 2))               # B x HW x Cv
            context = context.transpose(1, 2).reshape(b, -1, h, w)              # B x Cv x h x w
        verify(path, "context (softmax(query . pooled keys) @ pooled values, the input of out_project)",
               context, s["out_in"][0])
        name = calls.next()
        factors = {"query": query, "key": k_pooled}
        factors["pool"] = pool
        publish(emit, detach, name, KIND, (h, w), factors, _read_ann, {"scale": scale, "scales": _scales(m)},
                stored=("query", "key"))

    handles.append(block.register_forward_hook(post))
    return handles


def _scales(block: nn.Module) -> tuple[int, ...]:
    return tuple(int(p.output_size if isinstance(p.output_size, int) else p.output_size[0])
                 for p in block.key_downsample)


def _keep_input(scratch: dict[str, list], key: str):
    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        scratch.setdefault(key, []).append(args[0])
    return hook


def _read_ann(record: SiteRecord, batch: int, cell: tuple[int, int]) -> ContextMap:
    """Exact: sum over the pooled bins of the pixel's attention times the bin's uniform spread."""
    h, w = record.grid
    q = record.factors["query"][batch, cell[0] * w + cell[1]].double()         # C
    sim = torch.softmax(record.meta["scale"] * (q @ record.factors["key"][batch].double()), dim=0)  # bins
    names = tuple(f"{s}x{s} bin ({i // s}, {i % s})" for s in record.meta["scales"] for i in range(s * s))
    return row_map(sim @ record.factors["pool"].double(), (h, w), cell, record, sources=names,
                   source_weights=sim.numpy())


# -- ocrviz's PSPHead: one HookPoint per pooled level -------------------------------------------------
TOY_CONVENTION = ("each pooling scale weighted equally (the bottleneck mixes them, and the pixel's own "
                  "features, by learned weights); within a scale, exact: the bins' bilinear weights times "
                  "each bin's uniform average")


@functools.lru_cache(maxsize=32)
def _pool_up(scale: int, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(P: s*s x HW, U: HW x s*s) of ``F.adaptive_avg_pool2d`` and the align_corners=False resize."""
    return pool_matrix(scale, grid), up_matrix(scale, grid, align_corners=False)


def _hook_sites(cache: Cache) -> list[Site]:
    """ocrviz PSP heads (``models.psp``): ``<path>.hook_pooled_<s>`` for each of the module's ``bins``."""
    names = cache.names()
    out = []
    for name in names:
        path, _, leaf = name.rpartition(".")
        if leaf != "hook_bottleneck":
            continue
        module = _module(cache, path)
        bins = tuple(getattr(module, "bins", ()))
        hooks = {f"pooled{s}": f"{path}.hook_pooled_{s}" for s in bins}
        if not bins or not all(n in names for n in hooks.values()) or not hasattr(module, "levels"):
            continue
        hooks["bottleneck"] = name
        grid = tuple(int(v) for v in cache[name].shape[-2:])
        out.append(Site(path=path, kind=KIND, hooks=hooks, grid=grid,
                        order=max(names.index(n) for n in hooks.values())))
    return out


def _module(cache: Cache, path: str) -> nn.Module | None:
    try:
        return cache.module(path)
    except (ValueError, AttributeError):
        return None


def _features(cache: Cache, site: Site) -> torch.Tensor | None:
    """The head's input (the model's ``hook_features``) when captured on the same grid, else None."""
    found = [n for n in cache.names() if n.rpartition(".")[2] == "hook_features"]
    if len(found) == 1 and tuple(cache[found[0]].shape[-2:]) == site.grid:
        return cache[found[0]]
    return None


_CHECKED: "weakref.WeakKeyDictionary[Cache, set]" = weakref.WeakKeyDictionary()   # (site, batch) checked


def _check_bins(cache: Cache, site: Site, batch: int) -> None:
    """Each level's captured bins equal its conv-BN-ReLU applied to P_s @ features (the footprint's check;
    once per cache, site and image)."""
    done = _CHECKED.setdefault(cache, set())
    feats = _features(cache, site)
    if feats is None or (site.path, batch, id(feats)) in done:
        return                                       # features not captured (names=...): geometry unchecked
    module = cache.module(site.path)
    x = feats[batch : batch + 1]                                              # 1 x Cf x h x w
    h, w = site.grid
    with torch.no_grad():
        for s, level in zip(module.bins, module.levels):
            pool, _ = _pool_up(s, site.grid)
            pooled = (x.reshape(1, -1, h * w).double() @ pool.T).reshape(1, -1, s, s)   # 1 x Cf x s x s
            verify(site.path, f"level {s} bins (conv-BN-ReLU of each bin's plain mean)",
                   level(pooled.to(x.dtype)), cache[site.hooks[f"pooled{s}"]][batch : batch + 1])
    done.add((site.path, batch, id(feats)))


def _bins_of(site: Site) -> tuple[int, ...]:
    return tuple(int(k[len("pooled"):]) for k in site.hooks if k.startswith("pooled"))


def _read_toy(cache: Cache, site: Site, cell: tuple[int, int], batch_index: int) -> ContextMap:
    _check_bins(cache, site, batch_index)
    h, w = site.grid
    p = cell[0] * w + cell[1]
    bins = _bins_of(site)
    total = torch.zeros(h * w, dtype=torch.float64)
    names, shares = [], []
    for s in bins:
        pool, up = _pool_up(s, site.grid)
        u = up[p] / len(bins)                                                 # s*s bin shares
        total += u @ pool                                                     # HW
        names += [f"{s}x{s} bin ({i // s}, {i % s})" for i in range(s * s)]
        shares.append(u)
    return ContextMap(weights=total.reshape(h, w).numpy(), off_grid=0.0, cell=cell, exact=False,
                      convention=TOY_CONVENTION, site=site.path, kind=KIND, sources=tuple(names),
                      source_weights=torch.cat(shares).numpy())


# -- the producer interface (ocrviz.context) ------------------------------------------------------
def find_sites(cache: Cache) -> list[Site]:
    """This family's sites in ``cache``: hooked MMSeg records and ocrviz PSP heads (forward order is the caller's)."""
    return sites_of(cache, KIND) + _hook_sites(cache)


def read(cache: Cache, site: Site, cell: tuple[int, int], batch_index: int = 0) -> ContextMap:
    """Pixel ``cell``'s map at ``site``, computed from the stored factors (ocrviz PSP: from the bin geometry)."""
    if "bottleneck" in site.hooks:
        h, w = site.grid
        if not (0 <= cell[0] < h and 0 <= cell[1] < w):
            raise ValueError(f"cell {cell} is outside {site.path}'s {h} x {w} grid")
        return _read_toy(cache, site, (int(cell[0]), int(cell[1])), batch_index)
    return read_site(cache, site, cell, batch_index)


def masses(cache: Cache, site: Site, frac: np.ndarray, batch_index: int = 0) -> np.ndarray:
    """HW x O: every cell's map's mass on each of the O cell maps ``frac`` (O x h x w)."""
    f = np.asarray(frac, np.float64).reshape(len(frac), -1).T                # HW x O
    if "bottleneck" in site.hooks:
        _check_bins(cache, site, batch_index)
        out = np.zeros((f.shape[0], f.shape[1]))
        bins = _bins_of(site)
        for s in bins:
            pool, up = _pool_up(s, site.grid)
            out += up.numpy() @ (pool.numpy() @ f) / len(bins)                # HW x s*s @ s*s x O
        return out
    h, w = site.grid
    return np.stack([read_site(cache, site, (q // w, q % w), batch_index).weights.ravel()
                     for q in range(h * w)]) @ f


def head_logits(cache: Cache, site: Site, batch_index: int = 0) -> torch.Tensor | None:
    """K x h x w main logits for ocrviz heads (``sites.ocrviz_head_logits``); None for hooked foreign trees."""
    return ocrviz_head_logits(cache, batch_index) if "bottleneck" in site.hooks else None
