"""Global context (GCNet): one softmax mask over all pixels, the same context map for every pixel.

Recognised: mmcv ``ContextBlock`` (MMSeg's GCHead).  With
``pooling_type='att'`` the context is ``x @ softmax_HW(conv_mask(x))``, a
C x 1 x 1 vector added to (or multiplied into) every pixel, so every pixel's
map is that one mask (GCNet's point: query-independent attention).  With
``pooling_type='avg'`` the mask is uniform.  Per call the hooks check that the
mask reproduces the module's own context (the input of its fusion conv).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..capture.cache import Cache
from ..capture.foreign import verify
from .sites import (CallCounter, Emit, HookSite, SiteRecord, class_names, join, publish, read_site, recorder, row_map,
                    sites_of)
from .types import ContextMap, Site

KIND = "global_context"
GC_CLASSES = frozenset({"ContextBlock"})


def find_modules(model: nn.Module) -> list[HookSite]:
    """mmcv ContextBlock modules, module order."""
    return [HookSite(path, m, KIND, _attach, (join(path, "mask"),)) for path, m in model.named_modules()
            if class_names(m) & GC_CLASSES and hasattr(m, "pooling_type")]


def _attach(site: HookSite, emit: Emit, detach: bool) -> list[RemovableHandle]:
    path, mod = site.path, site.module
    scratch: dict[str, list] = {}
    calls = CallCounter(path)
    fusion = mod.channel_add_conv if mod.channel_add_conv is not None else mod.channel_mul_conv
    handles = [fusion.register_forward_hook(recorder(scratch, "fusion", keep_input=True))]
    att = mod.pooling_type == "att"
    if att:
        handles.append(mod.softmax.register_forward_hook(recorder(scratch, "softmax")))
        handles.append(mod.conv_mask.register_forward_hook(recorder(scratch, "conv_mask")))

    def post(m: nn.Module, args: tuple, output: torch.Tensor) -> None:
        s = {k: v[-1] for k, v in scratch.items()}
        scratch.clear()
        x = args[0]
        b, c, h, w = x.shape
        with torch.no_grad() if detach else torch.enable_grad():
            if att:
                mask = torch.softmax(s["conv_mask"].reshape(b, h * w), dim=-1)           # B x HW
                verify(path, "context mask (softmax over HW of conv_mask)", mask, s["softmax"].reshape(b, h * w))
            else:
                mask = torch.full((b, h * w), 1.0 / (h * w), dtype=x.dtype, device=x.device)   # avg pooling
            context = torch.einsum("bcn,bn->bc", x.reshape(b, c, h * w), mask).reshape(b, c, 1, 1)
        verify(path, "context (x @ mask, the input of the fusion conv)", context, s["fusion_in"])
        name = calls.next()
        publish(emit, detach, name, KIND, (h, w), {"mask": mask}, _read)

    handles.append(mod.register_forward_hook(post))
    return handles


def _read(record: SiteRecord, batch: int, cell: tuple[int, int]) -> ContextMap:
    """The module's one mask (exact; the same for every cell)."""
    return row_map(record.factors["mask"][batch], record.grid, cell, record, same_for_every_pixel=True)


# -- the producer interface (ocrviz.context) ------------------------------------------------------
def find_sites(cache: Cache) -> list[Site]:
    """This family's captured records in ``cache``, as sites (forward order is the caller's)."""
    return sites_of(cache, KIND)


def read(cache: Cache, site: Site, cell: tuple[int, int], batch_index: int = 0) -> ContextMap:
    """Pixel ``cell``'s map at ``site``, computed from the stored factors."""
    return read_site(cache, site, cell, batch_index)
