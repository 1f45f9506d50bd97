"""The context modules capture hooks: those of the producers (``ocrviz.context.PRODUCERS``) that
define ``find_modules(model)`` (see ``sites.py``); no second list to keep in step.
"""
from __future__ import annotations

import weakref

from torch import nn

from ..models.hook_point import HookPoint
from .sites import HookSite


# model -> (its module tree's signature, its sites): every producer walks the whole tree, which cost
# ~6 ms of a 100 ms capture; the signature (each module's id and type) notices any swapped module.
_FOUND: "weakref.WeakKeyDictionary[nn.Module, tuple[tuple, list[HookSite]]]" = weakref.WeakKeyDictionary()


def find_context_sites(model: nn.Module) -> list[HookSite]:
    """Every recognised context module in ``model``, module order.

    Modules that hold ocrviz HookPoints are left to those HookPoints.
    """
    signature = tuple((id(m), type(m)) for m in model.modules())
    hit = _FOUND.get(model)
    if hit is not None and hit[0] == signature:
        return list(hit[1])
    sites = _find(model)
    if all(s.module is not model for s in sites):      # a value holding its own key would never be freed
        _FOUND[model] = (signature, sites)
    return list(sites)


def _find(model: nn.Module) -> list[HookSite]:
    from . import PRODUCERS
    sites = [s for p in PRODUCERS if hasattr(p, "find_modules") for s in p.find_modules(model)]
    order = {path: i for i, (path, _) in enumerate(model.named_modules())}
    sites = [s for s in sites if not any(isinstance(m, HookPoint) for m in s.module.modules())]
    return sorted(sites, key=lambda s: order[s.path])
