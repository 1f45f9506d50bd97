"""The context-head families capture hooks, by an explicit import list (no registry).

Adding a head family is one module with ``find_sites`` / ``read`` (see
``sites.py``) and one line here.
"""
from __future__ import annotations

from torch import nn

from ..models.hook_point import HookPoint
from . import criss_cross, em, global_context, isa, pooling_bins, self_attention, transformer
from .sites import HookSite

FAMILIES = (self_attention, criss_cross, pooling_bins, global_context, isa, em, transformer)


def find_context_sites(model: nn.Module) -> list[HookSite]:
    """Every recognised context module in ``model``, module order.

    Modules that hold ocrviz HookPoints are left to those HookPoints.
    """
    sites = [s for family in FAMILIES for s in family.find_sites(model)]
    order = {path: i for i, (path, _) in enumerate(model.named_modules())}
    sites = [s for s in sites if not any(isinstance(m, HookPoint) for m in s.module.modules())]
    return sorted(sites, key=lambda s: order[s.path])
