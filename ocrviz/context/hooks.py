"""The context modules capture hooks: those of the producers (``ocrviz.context.PRODUCERS``) that
define ``find_modules(model)`` (see ``sites.py``); no second list to keep in step.
"""
from __future__ import annotations

from torch import nn

from ..models.hook_point import HookPoint
from .sites import HookSite


def find_context_sites(model: nn.Module) -> list[HookSite]:
    """Every recognised context module in ``model``, module order.

    Modules that hold ocrviz HookPoints are left to those HookPoints.
    """
    from . import PRODUCERS
    sites = [s for p in PRODUCERS if hasattr(p, "find_modules") for s in p.find_modules(model)]
    order = {path: i for i, (path, _) in enumerate(model.named_modules())}
    sites = [s for s in sites if not any(isinstance(m, HookPoint) for m in s.module.modules())]
    return sorted(sites, key=lambda s: order[s.path])
