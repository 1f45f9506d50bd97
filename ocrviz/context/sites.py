"""Context sites: what a head family hooks during capture and what it leaves in the cache.

Every head-family module in ``ocrviz/context/`` (self-attention, criss-cross,
pooling bins, ...) has the same three names:

* ``find_sites(model) -> list[HookSite]``: its recognised modules, module order;
* ``HookSite.attach(emit, detach)``: registers the hooks (the caller owns and
  removes the handles), and per call of the module checks that the stored
  factors reproduce the module's own tensor, then hands a :class:`SiteRecord`
  to ``emit.site`` (a module called twice gives two records);
* ``read(record, batch, cell) -> ContextMap``: one pixel's map, computed on
  demand from the factors (an HW x HW map is never stored).

``capture`` collects the records in forward order in ``cache.context_sites``;
``ocrviz.context_maps`` turns a pixel into one map per record.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from .types import ContextMap


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
