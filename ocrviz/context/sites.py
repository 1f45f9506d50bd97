"""Hooked context sites: what a head family hooks during capture and what it leaves in the cache.

The families that read module trees ocrviz did not write (MMSeg's heads:
self-attention, criss-cross, pooling bins, global context, ISA, EM,
transformer) define, besides the producer names of ``ocrviz.context``
(``KIND``, ``find_sites(cache)``, ``read(cache, site, cell, batch_index)``):

* ``find_modules(model) -> list[HookSite]``: its recognised modules, module order;
* ``HookSite.attach(emit, detach)``: registers the hooks (``capture`` owns and
  removes the handles); per call of the module the hooks check that the kept
  factors reproduce the module's own tensor, store the factors in the cache
  and hand a :class:`SiteRecord` to ``emit.site`` (a module called twice gives
  two records, ``path`` and ``path.call1``);
* ``SiteRecord.read(record, batch, cell) -> ContextMap``: one pixel's map,
  computed on demand from the factors (an HW x HW map is never stored).

``capture`` keeps the records in forward order in ``cache.context_sites``;
:func:`sites_of` and :func:`read_site` give them the producer interface.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from .types import ContextMap, Site


class Emit(Protocol):
    """What a site's hooks hand their results to (``capture`` provides it)."""

    def store(self, name: str, tensor: torch.Tensor) -> None: ...

    def site(self, record: "SiteRecord") -> None: ...


@dataclass(frozen=True)
class SiteRecord:
    """One call of one context module: its factors and the function that reads a pixel's map.

    name: module path, plus ``.call{i}`` for the i-th call (i >= 1) of a module called again.
    grid: (h, w) of the grid the map lives on.
    factors: the tensors the map is computed from (batch first), also in the cache by name.
    """

    name: str
    kind: str
    grid: tuple[int, int]
    factors: dict[str, torch.Tensor]
    read: Callable[["SiteRecord", int, tuple[int, int]], ContextMap]
    meta: dict[str, Any] = field(default_factory=dict)
    stored: tuple[str, ...] = ()          # roles stored in the cache as ``<name>.<role>`` (first: batch first)

    def map(self, batch: int, cell: tuple[int, int]) -> ContextMap:
        h, w = self.grid
        r, c = cell
        if not (0 <= r < h and 0 <= c < w):
            raise ValueError(f"cell {cell} is outside {self.name}'s {h} x {w} grid")
        return self.read(self, batch, (int(r), int(c)))


@dataclass
class HookSite:
    """A recognised context module and the function that hooks it."""

    path: str
    module: nn.Module
    kind: str
    hook: Callable[["HookSite", Emit, bool], list[RemovableHandle]]
    names: tuple[str, ...] = ()
    unsupported: str | None = None

    def attach(self, emit: Emit, detach: bool) -> list[RemovableHandle]:
        if self.unsupported:
            raise ValueError(f"{self.path or '<model>'} ({type(self.module).__name__}) uses {self.unsupported}, "
                             f"which ocrviz cannot read exactly; capture with names=... that leave it out")
        return self.hook(self, emit, detach)


def publish(emit: Emit, detach: bool, name: str, kind: str, grid: tuple[int, int], factors: dict[str, torch.Tensor],
            read: Callable[[SiteRecord, int, tuple[int, int]], ContextMap], meta: dict[str, Any] | None = None,
            stored: tuple[str, ...] | None = None) -> None:
    """Store the ``stored`` factors (default: all) as ``<name>.<role>`` and hand over the record."""
    roles = tuple(factors) if stored is None else stored
    for role in roles:
        emit.store(join(name, role), factors[role].detach() if detach else factors[role])
    emit.site(SiteRecord(name, kind, (int(grid[0]), int(grid[1])), factors, read, meta or {}, roles))


def sites_of(cache: Any, kind: str) -> list[Site]:
    """The producer interface's ``find_sites``: ``cache``'s records of ``kind`` whose factors it holds."""
    names = cache.names()
    index = {n: i for i, n in enumerate(names)}
    out = []
    for rec in getattr(cache, "context_sites", ()):
        hooks = {role: join(rec.name, role) for role in rec.stored}
        if rec.kind != kind or not hooks or not all(n in index for n in hooks.values()):
            continue                                       # another family, or a names=... filter left it out
        out.append(Site(path=rec.name, kind=kind, hooks=hooks, grid=rec.grid,
                        order=max(index[n] for n in hooks.values())))
    return out


def read_site(cache: Any, site: Site, cell: tuple[int, int], batch_index: int = 0) -> ContextMap:
    """The producer interface's ``read``: the record behind ``site``, read at ``cell``."""
    for rec in cache.context_sites:
        if rec.name == site.path and rec.kind == site.kind:
            return rec.map(batch_index, cell)
    raise ValueError(f"no captured record for site {site.path!r} ({site.kind}); capture the model again")


def class_names(module: nn.Module) -> set[str]:
    """Names of every class in ``module``'s MRO (subclasses count as their bases)."""
    return {c.__name__ for c in type(module).__mro__}


def join(path: str, role: str) -> str:
    return f"{path}.{role}" if path else role


class CallCounter:
    """Names a module's successive calls within one capture: ``path``, ``path.call1``, ..."""

    def __init__(self, path: str) -> None:
        self.path, self.count = path, 0

    def next(self) -> str:
        name = self.path if self.count == 0 else join(self.path, f"call{self.count}")
        self.count += 1
        return name


def recorder(scratch: dict[str, list], key: str, keep_input: bool = False) -> Callable:
    """A forward hook appending a submodule's output (and first input) to ``scratch[key]`` per call."""
    def hook(module: nn.Module, args: tuple, output: Any) -> None:
        scratch.setdefault(key, []).append(output)
        if keep_input:
            scratch.setdefault(key + "_in", []).append(args[0])
    return hook


def row_map(row: torch.Tensor, grid: tuple[int, int], cell: tuple[int, int], record: SiteRecord,
            *, exact: bool = True, convention: str = "", off_grid: float = 0.0,
            sources: tuple[str, ...] | None = None, source_weights: Any = None, **extra: Any) -> ContextMap:
    """A ContextMap from a row over the h*w cells (float64, >= 0)."""
    weights = row.detach().double().reshape(grid).cpu().numpy()   # h x w
    return ContextMap(weights=weights, off_grid=float(off_grid), cell=cell, exact=exact, convention=convention,
                      site=record.name, kind=record.kind, sources=sources, source_weights=source_weights,
                      extra=dict(extra))


def ocrviz_head_logits(cache: Any, batch_index: int = 0) -> torch.Tensor | None:
    """K x h x w main logits of an ocrviz ``SegModel`` in eval mode: its ``head`` re-run on the captured
    ``hook_features`` (the head is per image and deterministic in eval); None for other models."""
    model = getattr(cache, "model", None)
    head = getattr(model, "head", None)
    if head is None or model.training or "hook_features" not in cache.names():
        return None
    with torch.no_grad():
        out = head(cache["hook_features"][batch_index : batch_index + 1])
    main = out[1] if isinstance(out, tuple) else out
    return main[0] if torch.is_tensor(main) and main.dim() == 4 else None
