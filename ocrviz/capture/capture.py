"""capture() and run_with_cache(): one context manager owns and removes its hooks.

TransformerLens style: every ``HookPoint`` in the model is named by its
module path; ``capture`` registers one forward hook per selected HookPoint,
stores what it sees in a :class:`Cache`, and removes every handle in
``finally``, also when the forward raises.  Models without HookPoints
(official HRNet-OCR, openseg, MMSeg) are captured through ``foreign.py``.

    >>> with capture(model) as cache:                              # doctest: +SKIP
    ...     logits = model(x)
    >>> cache.sim_map.shape                                        # B x HW x K
    >>> logits, cache = run_with_cache(model, x, names=["hook_sim_map"])  # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Union

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..models.hook_point import HookPoint
from .cache import Cache, resolve
from .foreign import ForeignSite, find_foreign

NameFilter = Union[None, str, Iterable[str], Callable[[str], bool]]


def hook_names(model: nn.Module) -> list[str]:
    """Module paths of every HookPoint in ``model`` (registration order, not execution order)."""
    return [name for name, m in model.named_modules() if isinstance(m, HookPoint)]


class NothingToCapture(ValueError):
    """The model has no hook to capture, or ``names=`` selected none of its hooks."""


def _selector(names: NameFilter, available: list[str]) -> Callable[[str], bool]:
    """Turn ``names`` into a predicate; unknown names raise, listing the valid ones."""
    if names is None:
        return lambda _: True
    if callable(names):
        chosen = {n for n in available if names(n)}
        if not chosen:
            raise NothingToCapture(f"the names=... callable selected none of the {len(available)} hooks: "
                             f"{', '.join(available)}")
        return chosen.__contains__
    queries = [names] if isinstance(names, str) else list(names)
    chosen: set[str] = set()
    for q in queries:
        if not isinstance(q, str):
            raise TypeError(f"names=... takes hook names (str), a list of them or a callable; got {q!r}")
        found = resolve(q, available)
        if not found:
            close = difflib.get_close_matches(q, available + [n.rpartition(".")[2] for n in available], n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ValueError(f"no hook matches {q!r}. Available hooks (exact name or dotted suffix, "
                             f"e.g. 'hook_sim_map'): {', '.join(available)}.{hint}")
        chosen.update(found)
    return chosen.__contains__


@contextlib.contextmanager
def capture(model: nn.Module, names: NameFilter = None, *, detach: bool = True,
            foreign: bool | None = None) -> Iterator[Cache]:
    """Capture the tensors behind ``model``'s hooks during the forward passes in the block.

    Args:
        model: any ``nn.Module``; its HookPoints are named by module path.
        names: ``None`` (all), a name, a list of names (exact, or dotted suffix
            such as ``"hook_sim_map"``; the ``hook_`` prefix may be left out),
            or a callable ``name -> bool``.  A name that matches nothing raises
            ``ValueError`` listing the available names.
        detach: store detached tensors (default).  ``detach=False`` keeps the
            autograd graph so gradients flow through cached tensors (Captum).
        foreign: ``None`` (default): HookPoints, plus foreign adapters on
            recognised OCR modules (see ``foreign.py``) that hold no
            HookPoint.  ``True``: foreign adapters only, on every recognised
            module (HookPoints ignored; cross-checks a HookPoint model).
            ``False``: HookPoints only.

    One forward pass per block: a hook that fires twice raises ``CaptureError``.

    Example::

        with capture(model, names=["hook_sim_map", "hook_region_weights"]) as cache:
            model(x)
        cache.sim_map            # B x HW x K
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"capture() takes an nn.Module, got {type(model).__name__}")
    points = [] if foreign is True else [(n, m) for n, m in model.named_modules() if isinstance(m, HookPoint)]
    sites: list[ForeignSite] = [] if foreign is False else find_foreign(model, skip_hooked=foreign is None)
    if foreign is True and not sites:
        raise ValueError(f"foreign=True but {type(model).__name__} has no recognised OCR module "
                         f"(SpatialGather_Module, SpatialOCR_Module / ObjectAttentionBlock2D, MMSeg "
                         f"ObjectAttentionBlock / SpatialGatherModule); use foreign=None")
    # Imported here: the context families import capture.foreign (verify), and capture is
    # imported first by ``ocrviz/__init__``.
    from ..context.hooks import find_context_sites
    context_sites = [] if foreign is True else find_context_sites(model)
    available = ([n for n, _ in points] + [n for s in sites for n in s.names]
                 + [n for s in context_sites for n in s.names])
    if not available:
        raise NothingToCapture(f"{type(model).__name__} has no HookPoint modules and no recognised OCR modules "
                         f"(nor a context head that ocrviz/context/ reads); "
                         f"nothing to capture. Build it with ocrviz.create_model(...) or place "
                         f"ocrviz.models.hook_point.HookPoint modules where tensors should be seen.")
    keep = _selector(names, available)
    cache = Cache(available, model)

    def store(name: str, tensor: torch.Tensor) -> None:
        if keep(name):
            cache._add(name, tensor.detach() if detach else tensor)

    handles: list[RemovableHandle] = [model.register_forward_pre_hook(_input_size(cache), with_kwargs=True)]
    try:
        for name, module in points:
            if keep(name):
                handles.append(module.register_forward_hook(_point_hook(name, store)))
        for site in sites:
            if any(keep(n) for n in site.names):
                handles.extend(site.attach(store, detach))
        # a context site is one unit: once any of its names is selected, every factor of every call it
        # publishes is kept (NL's value and context, CCNet's second pass), else no map could be read
        emit = _Emit(lambda name, tensor: cache._add(name, tensor.detach() if detach else tensor), cache)
        for site in context_sites:
            if any(keep(n) for n in site.names):
                handles.extend(site.attach(emit, detach))
        yield cache
    finally:
        for handle in handles:
            handle.remove()
        handles.clear()


class _Emit:
    """What context sites hand their factors (``store``) and per-call records (``site``) to."""

    def __init__(self, store: Callable[[str, torch.Tensor], None], cache: Cache) -> None:
        self.store, self._cache = store, cache

    def site(self, record: Any) -> None:
        self._cache.context_sites.append(record)


def _input_size(cache: Cache) -> Callable:
    # The input image's H x W (the first tensor argument of 3 or more dims): pixels map to cells by it.
    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        for a in (*args, *kwargs.values()):
            if isinstance(a, torch.Tensor) and a.ndim >= 3:
                cache.input_size = (int(a.shape[-2]), int(a.shape[-1]))
                return
    return hook


def _point_hook(name: str, store: Callable[[str, torch.Tensor], None]) -> Callable:
    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        store(name, output)
    return hook


def run_with_cache(model: nn.Module, x: Any, names: NameFilter = None, *, detach: bool = True,
                   foreign: bool | None = None, **forward_kwargs: Any) -> tuple[Any, Cache]:
    """Run ``model(x, **forward_kwargs)`` once under :func:`capture`; return ``(output, cache)``.

    With ``detach=True`` (default) the forward runs under ``torch.no_grad()``;
    with ``detach=False`` autograd is on and cached tensors keep their graph.

    Example::

        logits, cache = run_with_cache(model, torch.randn(1, 3, 64, 64))
        cache.sim_map_grid()     # B x K x h x w
    """
    with capture(model, names, detach=detach, foreign=foreign) as cache:
        with torch.no_grad() if detach else contextlib.nullcontext():
            output = model(x, **forward_kwargs)
    return output, cache
