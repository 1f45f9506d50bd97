"""The independent side of the foreign-head tests: a full forward of the tree with hooks that replace
the sim map (at the input of the up projection: context = sim @ value) or the region weights (at the
gather's output: proxies = weights @ feats).  Imported by name; not a conftest."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

# module paths inside each tree: (gather, value projection, up projection, head logits from the output)
PATHS = {
    "official": ("ocr_gather_head", "ocr_distri_head.object_context_block.f_down",
                 "ocr_distri_head.object_context_block.f_up"),
    "openseg": ("spatial_context_head", "spatial_ocr_head.object_context_block.f_down",
                "spatial_ocr_head.object_context_block.f_up"),
    "mmseg": ("decode_head.1.spatial_gather_module", "decode_head.1.object_context_block.value_project",
              "decode_head.1.object_context_block.out_project"),
}


def head_logits(output: Any) -> torch.Tensor:
    """B x K x h x w main logits at feature resolution from [aux, main], (aux, main) or one tensor."""
    return output[-1] if isinstance(output, (list, tuple)) else output


@torch.no_grad()
def hooked_forward(model: nn.Module, x: torch.Tensor, layout: str, *, sim: torch.Tensor | None = None,
                   region_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Head logits B x K x h x w of ``model(x)`` with the sim map (B x HW x K) and/or the region weights
    (B x K x h x w) replaced inside the forward."""
    gather, value_path, up_path = (model.get_submodule(p) for p in PATHS[layout])
    seen: dict[str, torch.Tensor] = {}
    handles = []

    def keep_value(mod, args, out):
        seen["value"] = out                                                   # B x Ck x K x 1

    def replace_proxies(mod, args, out):
        feats = args[0]                                                       # B x C x h x w
        b, c = feats.shape[:2]
        w = region_weights.reshape(b, region_weights.shape[1], -1)            # B x K x HW
        proxies = torch.matmul(w, feats.reshape(b, c, -1).permute(0, 2, 1))  # B x K x C
        return proxies.permute(0, 2, 1).unsqueeze(3)                          # B x C x K x 1

    def replace_context(mod, args):
        ctx = args[0]                                                         # B x Ck x h x w
        b, ck, h, w = ctx.shape
        value = seen["value"].reshape(b, ck, -1).permute(0, 2, 1)             # B x K x Ck
        new = torch.matmul(sim.to(ctx.dtype), value)                          # B x HW x Ck
        return (new.permute(0, 2, 1).reshape(b, ck, h, w),)

    try:
        if region_weights is not None:
            handles.append(gather.register_forward_hook(replace_proxies))
        if sim is not None:
            handles.append(value_path.register_forward_hook(keep_value))
            handles.append(up_path.register_forward_pre_hook(replace_context))
        return head_logits(model(x))
    finally:
        for h in handles:
            h.remove()
