"""HookPoint: an identity module that marks a tensor worth capturing.

Models place one wherever an intermediate should be visible (TransformerLens
style).  Its name is its module path, e.g.
``head.ocr_distri_head.object_context_block.hook_sim_map``.  Capture attaches
forward hooks to these modules; without hooks they cost one function call.

This file lives with the models so that models never import ``capture``.
"""
from __future__ import annotations

import torch
from torch import nn


class HookPoint(nn.Module):
    """Identity ``nn.Module``; forward hooks on it see (and may replace) ``x``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x
