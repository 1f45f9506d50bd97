"""Helpers shared by the capture tests (imported by name; not a conftest)."""
from __future__ import annotations

import torch
from torch import nn

import ocrviz

TINY = dict(widths=(8, 8, 16, 16))


def tiny_ocrnet(num_classes: int = 4) -> nn.Module:
    """create_model("ocrnet") with tiny widths: C=16, Ck=8, stride 8; eval mode."""
    return ocrviz.create_model("ocrnet", num_classes=num_classes, mid_channels=16, key_channels=8, **TINY).eval()


def tiny_aspp(num_classes: int = 4) -> nn.Module:
    return ocrviz.create_model("aspp", num_classes=num_classes, channels=8, **TINY).eval()


_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs",
               "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called", "_backward_hooks",
               "_backward_pre_hooks")


def hooks_left(model: nn.Module) -> list[str]:
    """'<module path>.<hook dict>' for every hook still registered on ``model`` (or globally)."""
    left = [f"{name or '<model>'}.{d}" for name, m in model.named_modules() for d in _HOOK_DICTS
            if getattr(m, d, None)]
    glob = torch.nn.modules.module
    left += [g for g in ("_global_forward_hooks", "_global_forward_pre_hooks") if getattr(glob, g, None)]
    return left
