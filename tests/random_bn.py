"""Random BatchNorm statistics for test models (imported by name from any test folder).

With default BN (weight 1, bias 0, mean 0, var 1) eval mode is the identity, and a test could
pass with BN folded wrongly or skipped; random affine parameters and running statistics make
every BN matter.
"""
from __future__ import annotations

import torch


def randomise_bn(model: torch.nn.Module, seed: int = 0, *, spread: float = 0.2,
                 conv_bias: bool = False) -> torch.nn.Module:
    """weight U[0.5, 1.5], bias and running_mean N(0, spread²), running_var U[0.5, 1.5] on every
    BatchNorm2d (and N(0, spread²) on every conv bias with ``conv_bias``); returns it in eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0, spread, generator=g)
                m.running_mean.normal_(0, spread, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
            elif conv_bias and isinstance(m, torch.nn.Conv2d) and m.bias is not None:
                m.bias.normal_(0, spread, generator=g)
    return model.eval()
