"""Pooling bins (PSPNet's pyramid pooling): context from average-pooled bins, upsampled back.

Recognised: MMSeg's ``PPM`` (PSPHead; ``pool_scales`` such as (1, 2, 3, 6),
branches ``Sequential(AdaptiveAvgPool2d(s), ConvModule 1x1)``, each output
resized bilinearly to the input grid).

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

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..capture.foreign import verify
from .sites import CallCounter, Emit, HookSite, SiteRecord, class_names, join, row_map
from .types import ContextMap

KIND = "pooling_bins"
PPM_CLASSES = frozenset({"PPM"})
CONVENTION = ("each pooling scale weighted equally (the bottleneck mixes them by learned weights); within a "
              "scale, exact: the bins' bilinear weights times each bin's uniform average")


def find_sites(model: nn.Module) -> list[HookSite]:
    """MMSeg PPM modules (a ModuleList of AdaptiveAvgPool2d + conv branches), module order."""
    return [HookSite(path, m, KIND, _attach, (join(path, "bins"),)) for path, m in model.named_modules()
            if class_names(m) & PPM_CLASSES and hasattr(m, "pool_scales") and isinstance(m, nn.ModuleList)]


def pool_matrix(scale: int, grid: tuple[int, int], dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """P: s*s x HW, AdaptiveAvgPool2d(scale) applied to the HW one-hot cells (each row sums to 1)."""
    h, w = grid
    eye = torch.eye(h * w, dtype=dtype).reshape(h * w, 1, h, w)              # HW one-hot images
    return F.adaptive_avg_pool2d(eye, scale).reshape(h * w, scale * scale).T  # s*s x HW


def up_matrix(scale: int, grid: tuple[int, int], align_corners: bool, dtype: torch.dtype = torch.float64) -> torch.Tensor:
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
        emit.store(join(name, "bins"), torch.tensor(list(m.pool_scales)))
        emit.site(SiteRecord(name, KIND, (h, w), factors, read, {"scales": tuple(m.pool_scales)}))

    handles.append(ppm.register_forward_hook(post))
    return handles


def _keep(scratch: dict[str, list], key: str):
    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        scratch.setdefault(key, []).append(output)
    return hook


def read(record: SiteRecord, batch: int, cell: tuple[int, int]) -> ContextMap:
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
