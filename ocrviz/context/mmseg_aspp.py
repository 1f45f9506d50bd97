"""MMSeg's ASPP heads (DeepLabV3 ``ASPPHead``, DeepLabV3+ ``DepthwiseSeparableASPPHead``): dilated taps.

Like ``dilated_taps.py`` (ocrviz's own ASPP) the map is a stated convention,
but MMSeg fuses the branches with a 3x3 ``bottleneck`` (ocrviz's ASPP uses a
1x1 projection), so both the shares and the footprint account for it:

* branch i's share at p is ``||(W_i * b_i)(p)|| / sum_j ||(W_j * b_j)(p)||``,
  W_i the bottleneck's 3x3 weight restricted to branch i's channels (bias,
  BN and ReLU left out);
* within a branch the footprint is exact: the bottleneck reads p + d
  (d in its 3x3 window), and the branch there reads p + d + r t (t in the
  3x3 taps of rate r; the 1x1 branch reads p + d itself; image pooling every
  cell); each (d, t) pair gets 1 / 81 (1 / 9 for the 1x1 branch), and pairs
  landing on either zero padding are off-grid.

Per call the hooks check that the bottleneck's input is
``cat([resize(image_pool(x)), *aspp_modules(x)])`` in that order (the layout
the shares are read from).  DeepLabV3+'s low-level skip (c1) adds local
detail after this site and is not drawn.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..capture.cache import Cache
from ..capture.foreign import verify
from .sites import (CallCounter, Emit, HookSite, SiteRecord, class_names, join, publish, read_site, recorder,
                    sites_of)
from .types import ContextMap, Site

KIND = "aspp"
ASPP_CLASSES = frozenset({"ASPPHead"})
CONVENTION = ("MMSeg ASPP: each branch weighted by its share ||(W_b * b_b)(p)|| of the 3x3 bottleneck; within a "
              "branch uniform over its exact footprint (bottleneck 3x3 window x the branch's dilated taps), "
              "pooling evenly; cells on either zero padding are off-grid")


def find_modules(model: nn.Module) -> list[HookSite]:
    """MMSeg ASPPHead (and subclasses such as DepthwiseSeparableASPPHead), module order."""
    return [HookSite(path, m, KIND, _attach, (join(path, "branches"),)) for path, m in model.named_modules()
            if class_names(m) & ASPP_CLASSES and all(hasattr(m, a) for a in ("image_pool", "aspp_modules",
                                                                              "bottleneck", "dilations"))]


def _attach(site: HookSite, emit: Emit, detach: bool) -> list[RemovableHandle]:
    path, head = site.path, site.module
    scratch: dict[str, list] = {}
    calls = CallCounter(path)
    handles = [head.image_pool.register_forward_hook(recorder(scratch, "pool")),
               head.aspp_modules.register_forward_hook(recorder(scratch, "aspp"))]

    def post(bottleneck: nn.Module, args: tuple, output: torch.Tensor) -> None:
        s = {k: v[-1] for k, v in scratch.items()}
        scratch.clear()
        cat = args[0]                                                            # B x sum C_i x h x w
        h, w = cat.shape[-2:]
        pool = F.interpolate(s["pool"], size=(h, w), mode="bilinear", align_corners=head.align_corners)
        verify(path, "bottleneck input (cat of the upsampled image pool and the ASPP branches)",
               torch.cat([pool, *s["aspp"]], 1), cat)
        sizes = [pool.shape[1]] + [a.shape[1] for a in s["aspp"]]               # pool first, as MMSeg concatenates
        weight = bottleneck.conv.weight.detach().clone()                         # C_out x sum C_i x 3 x 3
        if weight.shape[-2:] != (3, 3) and weight.shape[-2:] != (1, 1):
            raise ValueError(f"{path}: bottleneck kernel {tuple(weight.shape[-2:])}; only 1x1 and 3x3 are read")
        meta = {"sizes": sizes, "dilations": tuple(int(d) for d in head.dilations), "weight": weight}
        publish(emit, detach, calls.next(), KIND, (h, w), {"branches": cat}, _read, meta)

    handles.append(head.bottleneck.register_forward_hook(post))
    return handles


def _shares(record: SiteRecord, batch: int, cell: tuple[int, int]) -> np.ndarray:
    """Each branch's ||(W_i * b_i)(p)|| normalised: [pool, dilation d_0, d_1, ...]."""
    cat = record.factors["branches"][batch]                                      # sum C_i x h x w
    weight = record.meta["weight"]
    k = weight.shape[-1] // 2
    patch = F.pad(cat, (k, k, k, k))[:, cell[0]:cell[0] + 2 * k + 1, cell[1]:cell[1] + 2 * k + 1]  # sum C x kh x kw
    norms, start = [], 0
    for size in record.meta["sizes"]:
        part = torch.einsum("ochw,chw->o", weight[:, start:start + size].double(), patch[start:start + size].double())
        norms.append(float(part.norm()))
        start += size
    norms = np.asarray(norms)
    return norms / norms.sum() if norms.sum() > 0 else np.full(len(norms), 1 / len(norms))


def _read(record: SiteRecord, batch: int, cell: tuple[int, int]) -> ContextMap:
    h, w = record.grid
    shares = _shares(record, batch, cell)
    kw = record.meta["weight"].shape[-1] // 2
    window = [(dy, dx) for dy in range(-kw, kw + 1) for dx in range(-kw, kw + 1)]
    m, off = np.zeros((h, w)), 0.0
    inside = lambda y, x: 0 <= y < h and 0 <= x < w                              # noqa: E731
    branches = [("pool", 0)] + [("1x1" if d == 1 else "rate", d) for d in record.meta["dilations"]]
    for (kind, rate), share in zip(branches, shares):
        for dy, dx in window:
            qy, qx = cell[0] + dy, cell[1] + dx
            if not inside(qy, qx):                                               # the bottleneck's padding
                off += share / len(window)
            elif kind == "pool":
                m += share / len(window) / (h * w)
            elif kind == "1x1":
                m[qy, qx] += share / len(window)
            else:
                for ty in (-rate, 0, rate):
                    for tx in (-rate, 0, rate):
                        if inside(qy + ty, qx + tx):
                            m[qy + ty, qx + tx] += share / len(window) / 9
                        else:                                                    # the branch's padding
                            off += share / len(window) / 9
    names = ("image pool", *(("1x1" if d == 1 else f"rate {d}") for d in record.meta["dilations"]))
    return ContextMap(weights=m, off_grid=off, cell=cell, exact=False, convention=CONVENTION, site=record.name,
                      kind=KIND, sources=names, source_weights=shares)


# -- the producer interface (ocrviz.context) ------------------------------------------------------
def find_sites(cache: Cache) -> list[Site]:
    """This family's captured records in ``cache``, as sites."""
    return sites_of(cache, KIND)


def read(cache: Cache, site: Site, cell: tuple[int, int], batch_index: int = 0) -> ContextMap:
    """Pixel ``cell``'s map at ``site`` (a convention: see the module docstring)."""
    return read_site(cache, site, cell, batch_index)
