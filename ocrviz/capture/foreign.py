"""Capture on OCR module trees ocrviz did not write, by hooking their own submodules.

Official HRNet-OCR, openseg.pytorch and MMSegmentation place no HookPoints, and
none of them keeps the similarity map.  Here we hook what they do expose (the
gather's inputs, the outputs of f_pixel / f_object / f_down or of
query_project / key_project / value_project, the input and output of f_up or
out_project), recompute the similarity map, and check that the context
recomputed from it equals the module's own: a mismatch raises
:class:`CaptureMismatchError`, never a silent picture.

Detection is duck typing on class names (anywhere in the MRO) plus attributes:

* gather: class ``SpatialGather_Module`` | ``SpatialGatherModule`` |
  ``SpatialGather``, attribute ``scale``, no parameters; ``forward(feats, probs)``.
* official / openseg block: class ``_ObjectAttentionBlock`` |
  ``ObjectAttentionBlock2D`` | ``ObjectAttentionBlock`` with ``f_pixel,
  f_object, f_down, f_up, key_channels, scale``; ``forward(x, proxy)``;
  sim map scaled by ``key_channels ** -0.5``.
* MMSeg block: class ``ObjectAttentionBlock`` with ``query_project,
  key_project, value_project, out_project, bottleneck, channels, matmul_norm``;
  ``forward(query_feats, key_feats)``; scaled by ``channels ** -0.5`` when
  ``matmul_norm``; its output is ``bottleneck(cat([context, query_feats]))``.
* OCR module: class ``SpatialOCR_Module`` | ``SpatialOCR`` with
  ``object_context_block`` and ``conv_bn_dropout``; its output is stored.

Stored names are ``<module path>.<role>`` (roles and shapes as in ``Cache``):
gather ``soft_regions`` (its probs input), ``pixel_feats`` (its feats input),
``region_weights``, ``proxies``; block ``query, key, value, sim_map, context,
object_context``; OCR module (or MMSeg block, bottleneck included) ``augmented``.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..models.hook_point import HookPoint

GATHER_CLASSES = frozenset({"SpatialGather_Module", "SpatialGatherModule", "SpatialGather"})
OFFICIAL_BLOCK_CLASSES = frozenset({"_ObjectAttentionBlock", "ObjectAttentionBlock2D", "ObjectAttentionBlock"})
MMSEG_BLOCK_CLASSES = frozenset({"ObjectAttentionBlock"})
OCR_MODULE_CLASSES = frozenset({"SpatialOCR_Module", "SpatialOCR"})
OFFICIAL_BLOCK_ATTRS = ("f_pixel", "f_object", "f_down", "f_up", "key_channels", "scale")
MMSEG_BLOCK_ATTRS = ("query_project", "key_project", "value_project", "out_project", "bottleneck",
                     "channels", "matmul_norm")
ROLES_BY_KIND = {
    "gather": ("soft_regions", "pixel_feats", "region_weights", "proxies"),
    "official_block": ("query", "key", "value", "sim_map", "context", "object_context"),
    "mmseg_block": ("query", "key", "value", "sim_map", "context", "object_context", "augmented"),
    "ocr_module": ("augmented",),
}
Store = Callable[[str, torch.Tensor], None]


class CaptureMismatchError(RuntimeError):
    """The similarity map recomputed from a foreign module does not reproduce its own output."""

    def __init__(self, path: str, quantity: str, max_abs_diff: float, detail: str = "") -> None:
        self.path, self.quantity, self.max_abs_diff = path, quantity, max_abs_diff
        super().__init__(
            f"{path or '<model>'}: recomputed {quantity} does not match the module's own "
            f"(max abs diff {max_abs_diff:.3g}{'; ' + detail if detail else ''}). This module does not "
            f"compute OCR the way its layout says, so ocrviz will not draw a similarity map for it. "
            f"If it was changed on purpose, place ocrviz HookPoints in it, or capture with foreign=False.")


def _has(module: nn.Module, attrs: tuple[str, ...]) -> bool:
    return all(hasattr(module, a) for a in attrs)


def _kind(module: nn.Module) -> str | None:
    names = {c.__name__ for c in type(module).__mro__}     # subclasses count too
    if names & GATHER_CLASSES and hasattr(module, "scale") and next(module.parameters(), None) is None:
        return "gather"
    if names & OFFICIAL_BLOCK_CLASSES and _has(module, OFFICIAL_BLOCK_ATTRS):
        return "official_block"
    if names & MMSEG_BLOCK_CLASSES and _has(module, MMSEG_BLOCK_ATTRS):
        return "mmseg_block"
    if names & OCR_MODULE_CLASSES and _has(module, ("object_context_block", "conv_bn_dropout")):
        return "ocr_module"
    return None


def _unsupported(module: nn.Module, kind: str) -> str | None:
    hooked = {"official_block": ("f_pixel", "f_object", "f_down", "f_up"),
              "mmseg_block": ("query_project", "key_project", "value_project")}.get(kind, ())
    for name in hooked:                       # hooks go on these: each must be a module
        if not isinstance(getattr(module, name), nn.Module):
            return f"{name} that is a {type(getattr(module, name)).__name__}, not an nn.Module"
    if kind == "official_block":
        if module.scale != 1:
            return f"scale={module.scale} (pooled queries)"
        if getattr(module, "use_bg", False):
            return "use_bg=True (background context)"
    if kind == "mmseg_block":
        if getattr(module, "query_downsample", None) is not None or getattr(module, "key_downsample", None) is not None:
            return "query_downsample / key_downsample (scale > 1)"
        if module.key_project is module.query_project:
            return "share_key_query=True"
    return None


def _join(path: str, role: str) -> str:
    return f"{path}.{role}" if path else role


@dataclass
class ForeignSite:
    """One recognised foreign module: where it is, what it is, what it will store."""

    path: str
    module: nn.Module
    kind: str
    unsupported: str | None = None
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.names = tuple(_join(self.path, r) for r in ROLES_BY_KIND[self.kind])

    def attach(self, store: Store, detach: bool) -> list[RemovableHandle]:
        """Register this site's hooks; the caller owns (and removes) the handles."""
        if self.unsupported:
            raise ValueError(
                f"{self.path or '<model>'} ({type(self.module).__name__}) uses {self.unsupported}, which foreign "
                f"capture does not support (only scale=1 without background context, with module "
                f"projections). Leave it out with "
                f"names=... or capture with foreign=False.")
        attach = {"gather": _attach_gather, "official_block": _attach_block,
                  "mmseg_block": _attach_block, "ocr_module": _attach_ocr_module}[self.kind]
        handles: list[RemovableHandle] = []
        try:
            attach(self, store, detach, handles)
        except BaseException:                 # a half-attached site leaves nothing behind
            for h in handles:
                h.remove()
            raise
        return handles


def find_foreign(model: nn.Module, *, skip_hooked: bool = True) -> list[ForeignSite]:
    """Recognised OCR modules in ``model`` (module order).

    With ``skip_hooked`` (what ``capture`` does by default) modules that hold
    ocrviz HookPoints are left to those HookPoints.
    """
    sites = []
    for path, module in model.named_modules():
        kind = _kind(module)
        if kind is None:
            continue
        if skip_hooked and any(isinstance(m, HookPoint) for m in module.modules()):
            continue
        sites.append(ForeignSite(path, module, kind, _unsupported(module, kind)))
    return sites


# -- helpers shared by the adapters ------------------------------------------------
def _arg(args: tuple, kwargs: dict, index: int, names: tuple[str, ...], path: str) -> torch.Tensor:
    if len(args) > index:
        return args[index]
    for n in names:
        if n in kwargs:
            return kwargs[n]
    raise TypeError(f"{path}: could not find input #{index} ({' / '.join(names)}) among the forward "
                    f"arguments {len(args)} positional, {sorted(kwargs)} keyword")


def _first(output: Any) -> torch.Tensor:
    # openseg's fetch_attention returns (context, sim_map).
    return output[0] if isinstance(output, (tuple, list)) else output


def _tolerance(dtype: torch.dtype) -> tuple[float, float]:
    eps = torch.finfo(dtype).eps if dtype.is_floating_point else 0.0
    return (1e-5, 1e-4) if eps <= torch.finfo(torch.float32).eps else (8 * eps, 8 * eps)


def verify(path: str, quantity: str, recomputed: torch.Tensor, actual: torch.Tensor) -> None:
    """Raise :class:`CaptureMismatchError` unless ``recomputed`` matches ``actual``.

    atol 1e-5 scaled by the magnitude of ``actual`` (max(1, max |actual|)),
    rtol 1e-4, for float32 and float64; 8 eps for lower precision.
    """
    r, a = recomputed.detach(), actual.detach()
    if r.shape != a.shape:
        raise CaptureMismatchError(path, quantity, math.inf,
                                   f"shape {tuple(r.shape)} recomputed vs {tuple(a.shape)} actual")
    if a.device.type == "meta" or r.device.type == "meta":
        return                                                        # no values to compare
    atol, rtol = _tolerance(a.dtype)
    mag = float(a.abs().max()) if a.numel() else 0.0
    if not torch.allclose(r.to(a.dtype), a, rtol=rtol, atol=atol * max(1.0, mag)):
        diff = float((r.double() - a.double()).abs().max()) if a.numel() else math.nan
        raise CaptureMismatchError(path, quantity, diff, f"tolerance atol {atol * max(1.0, mag):.3g}, rtol {rtol:g}")


def _grad(detach: bool) -> contextlib.AbstractContextManager:
    return torch.no_grad() if detach else contextlib.nullcontext()


def _record(scratch: dict, key: str, keep_input: bool = False) -> Callable:
    def hook(module: nn.Module, args: tuple, output: Any) -> None:
        if keep_input:
            scratch[key + "_in"] = args[0]
        scratch[key] = output
    return hook


def _take(scratch: dict, key: str, path: str) -> torch.Tensor:
    if key not in scratch:
        raise CaptureMismatchError(path, f"'{key}' call", math.nan,
                                   f"{key} was not called during the block's forward")
    return scratch[key]


def _attention(q_map: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float | None,
               ) -> tuple[torch.Tensor, ...]:
    """The OCR attention from the projections: query, key, value, sim_map, context."""
    b, ck, h, w = q_map.shape
    query = q_map.reshape(b, ck, h * w).permute(0, 2, 1)              # B x HW x Ck
    key = key.reshape(b, key.shape[1], -1)                             # B x Ck x K
    value = value.reshape(b, value.shape[1], -1).permute(0, 2, 1)      # B x K x Cv
    logits = torch.matmul(query, key)                                  # B x HW x K
    sim_map = F.softmax(logits if scale is None else scale * logits, dim=-1)  # B x HW x K
    context = torch.matmul(sim_map, value).permute(0, 2, 1).reshape(b, -1, h, w)  # B x Cv x h x w
    return query, key, value, sim_map, context


# -- adapters -------------------------------------------------------------------------
def _attach_gather(site: ForeignSite, store: Store, detach: bool, handles: list[RemovableHandle]) -> None:
    path, module = site.path, site.module

    def hook(mod: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        feats = _arg(args, kwargs, 0, ("feats",), path)
        probs = _arg(args, kwargs, 1, ("probs", "region_logits"), path)
        with _grad(detach):
            f, p = (feats.detach(), probs.detach()) if detach else (feats, probs)
            b, k, h, w = p.shape
            weights = F.softmax(mod.scale * p.reshape(b, k, h * w), dim=2)           # B x K x HW
            pixels = f.reshape(b, f.shape[1], h * w).permute(0, 2, 1)                # B x HW x C
            proxies = torch.matmul(weights, pixels).permute(0, 2, 1)                 # B x C x K
            out = _first(output)
            actual = out.squeeze(3) if out.dim() == 4 and out.shape[3] == 1 else out  # B x C x K
        verify(path, "proxies (softmax_HW(scale * probs) @ feats)", proxies, actual)
        store(_join(path, "soft_regions"), probs)
        store(_join(path, "pixel_feats"), feats)
        store(_join(path, "region_weights"), weights.reshape(b, k, h, w))           # B x K x h x w
        store(_join(path, "proxies"), actual)

    handles.append(module.register_forward_hook(hook, with_kwargs=True))


def _block_spec(block: nn.Module, kind: str) -> tuple[tuple[str, ...], str | None, str | None, float | None]:
    """(query, key, value projection names), up-projection, bottleneck, sim-map scale."""
    if kind == "official_block":
        return ("f_pixel", "f_object", "f_down"), "f_up", None, block.key_channels ** -0.5
    present = lambda n: n if isinstance(getattr(block, n, None), nn.Module) else None  # noqa: E731
    return (("query_project", "key_project", "value_project"), present("out_project"), present("bottleneck"),
            block.channels ** -0.5 if block.matmul_norm else None)


def _attach_block(site: ForeignSite, store: Store, detach: bool, handles: list[RemovableHandle]) -> None:
    """Official / openseg ``(x, proxy) -> f_up(context)`` and MMSeg ``-> bottleneck(cat([out_project(context), x]))``."""
    path, block = site.path, site.module
    qkv, up, bottleneck, scale = _block_spec(block, site.kind)
    scratch: dict[str, Any] = {}

    def pre(mod: nn.Module, args: tuple, kwargs: dict) -> None:
        scratch.clear()
        gt = args[2] if len(args) > 2 else kwargs.get("gt_label")
        if gt is not None and getattr(mod, "use_gt", False):
            raise ValueError(f"{path}: use_gt with a gt_label builds the sim map from labels; foreign capture "
                             f"does not support it (run without gt_label)")

    def post(mod: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        s = dict(scratch)
        scratch.clear()
        x = _arg(args, kwargs, 0, ("x", "feats", "query_feats"), path)
        with _grad(detach):
            parts = [_take(s, n, path).detach() if detach else _take(s, n, path) for n in qkv]
            query, key, value, sim_map, context = _attention(*parts, scale=scale)
        obj, out = context, _first(output)
        if up:
            verify(path, f"context (sim_map @ value, the input of {up})", context, _take(s, up + "_in", path))
            obj = _take(s, up, path)
        if bottleneck:
            verify(path, "bottleneck input (cat([object context, query_feats]))",
                   torch.cat([obj, x], 1), _take(s, bottleneck + "_in", path))
            verify(path, "block output (vs bottleneck output)", _take(s, bottleneck, path), out)
        else:
            verify(path, f"object context (block output vs {up or 'context'})", obj, out)
        if isinstance(output, (tuple, list)) and len(output) > 1 and isinstance(output[1], torch.Tensor):
            verify(path, "sim_map (returned by the block)", sim_map, output[1])   # openseg fetch_attention
        for role, t in zip(ROLES_BY_KIND[site.kind], (query, key, value, sim_map, context, obj, out)):
            store(_join(path, role), t)

    handles.append(block.register_forward_pre_hook(pre, with_kwargs=True))
    for name in (*qkv, up, bottleneck):
        if name:
            handles.append(getattr(block, name).register_forward_hook(_record(scratch, name, name in (up, bottleneck))))
    handles.append(block.register_forward_hook(post, with_kwargs=True))


def _attach_ocr_module(site: ForeignSite, store: Store, detach: bool, handles: list[RemovableHandle]) -> None:
    def hook(mod: nn.Module, args: tuple, output: Any) -> None:
        store(_join(site.path, "augmented"), _first(output))
    handles.append(site.module.register_forward_hook(hook))
