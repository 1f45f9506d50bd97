"""Plain forward hooks on HookPoints, independent of ocrviz.capture (so the
golden and invariant tests check the models without trusting capture)."""
from __future__ import annotations

import torch


def record_hooks(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Attach a forward hook to every HookPoint under ``module``; returns the dict they fill."""
    seen: dict[str, torch.Tensor] = {}
    for name, sub in module.named_modules():
        if name.rsplit(".", 1)[-1].startswith("hook_"):
            sub.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o.detach().clone()))
    return seen
