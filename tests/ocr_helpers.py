"""Shared test helpers (imported by name from every tests folder): tiny OCR models and hooked full forwards."""
from __future__ import annotations

from typing import Callable

import torch

import ocrviz
from random_bn import randomise_bn  # noqa: F401  (re-exported for the analysis tests)
from ocrviz.models.hrnet import HRNetW48OCR


def toy_ocr(num_classes: int = 5, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return randomise_bn(ocrviz.create_model("ocrnet", num_classes=num_classes, widths=(8, 16, 16, 32),
                                            mid_channels=32, key_channels=16), seed)


def small_hrnet(num_classes: int = 4, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return randomise_bn(HRNetW48OCR(num_classes=num_classes, width=4, ocr_mid_channels=16, ocr_key_channels=8), seed)


def hook_point(model: torch.nn.Module, suffix: str) -> torch.nn.Module:
    names = [n for n, _ in model.named_modules() if n.endswith(suffix)]
    assert len(names) == 1, (suffix, names)
    return model.get_submodule(names[0])


def hooked_head_logits(model: torch.nn.Module, x: torch.Tensor,
                       edits: dict[str, Callable[[torch.Tensor], torch.Tensor]]) -> torch.Tensor:
    """Independent reference: a full forward whose HookPoints' outputs are replaced by forward hooks.

    ``edits`` maps a HookPoint suffix (e.g. "hook_sim_map") to ``f(original output) -> replacement``.
    Returns the head logits B x K x h x w of that forward."""
    handles = [hook_point(model, name).register_forward_hook(lambda m, a, out, f=f: f(out))
               for name, f in edits.items()]
    try:
        with torch.no_grad():
            _, cache = ocrviz.run_with_cache(model, x, names=["hook_head_logits"])
    finally:
        for h in handles:
            h.remove()
    return cache["hook_head_logits"]


def hooked_logits(model: torch.nn.Module, x: torch.Tensor,
                  edits: dict[str, Callable[[torch.Tensor], torch.Tensor]]) -> torch.Tensor:
    """As ``hooked_head_logits`` but the model's own upsampled output B x K x H x W."""
    handles = [hook_point(model, name).register_forward_hook(lambda m, a, out, f=f: f(out))
               for name, f in edits.items()]
    try:
        with torch.no_grad():
            return model(x)
    finally:
        for h in handles:
            h.remove()
