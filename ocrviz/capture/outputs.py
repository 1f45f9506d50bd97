"""What a segmentation model returned: its main logits, and where to find its settings.

Models ocrviz did not write return their prediction in several shapes: the
official HRNet-OCR a list ``[aux, main]`` at 1/4 resolution, openseg a tuple
``(aux, main)``, MMSeg's ``EncoderDecoder`` in tensor mode one tensor,
torchvision-style models a dict with ``out``.  ``main_logits`` turns each into
one B x K x h x w tensor, or says what it got.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

LogitsFn = Callable[[Any], torch.Tensor]


def main_logits(output: Any, logits_fn: LogitsFn | None = None) -> torch.Tensor:
    """The main logits, B x K x h x w, from a model's output.

    A tensor is taken as is; a list or tuple gives its last item (the main
    head comes last in HRNet-OCR's ``[aux, main]`` and openseg's
    ``(aux, main)``); a dict gives ``out``.  ``logits_fn(output)`` overrides
    all of that.

        >>> main_logits([torch.zeros(1, 5, 8, 8), torch.ones(1, 5, 8, 8)]).mean().item()
        1.0
    """
    got = logits_fn(output) if logits_fn is not None else output
    if logits_fn is None:
        if isinstance(got, (list, tuple)) and got:
            got = got[-1]
        elif isinstance(got, dict):
            if "out" not in got:
                raise ValueError(f"the model returned a dict with keys {sorted(got)}; expected 'out' (the main "
                                 f"logits). Pass logits_fn=lambda out: out[...] to say which one")
            got = got["out"]
    if not isinstance(got, torch.Tensor) or got.ndim != 4:
        what = type(got).__name__ if not isinstance(got, torch.Tensor) else f"a tensor of shape {tuple(got.shape)}"
        raise ValueError(f"could not read main logits from the model's output ({what}); expected a B x K x h x w "
                         f"tensor, a list/tuple ending in one, or a dict with 'out'. Pass logits_fn=...")
    return got


class BilinearCalls(TorchFunctionMode):
    """Records the ``align_corners`` of every bilinear ``F.interpolate`` run while it is active.

    ``seen``: the values in call order (None, torch's default, counts as False).  Used around a
    model's own forward: a tree that keeps its setting in no attribute (official HRNet-OCR keeps it
    in a module global, openseg writes ``align_corners=True`` into its calls) shows it here."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[bool] = []

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is F.interpolate and kwargs.get("mode") in ("bilinear", "bicubic"):
            self.seen.append(bool(kwargs.get("align_corners")))
        return func(*args, **kwargs)


def _module_global(model: nn.Module) -> bool | None:
    """``ALIGN_CORNERS`` of the Python module that defines the class of ``model`` or of a submodule
    (official HRNet-OCR: ``ALIGN_CORNERS = config.MODEL.ALIGN_CORNERS`` in ``seg_hrnet_ocr.py``)."""
    for module in model.modules():
        value = getattr(sys.modules.get(type(module).__module__), "ALIGN_CORNERS", None)
        if isinstance(value, bool):
            return value
    return None


def find_align_corners(model: nn.Module, default: bool = False, observed: Sequence[bool] = ()) -> bool:
    """The model's own ``align_corners``, where it keeps it.

    In order: its own attribute, else the first submodule's (MMSeg's segmentors and decode heads
    carry one); the ``ALIGN_CORNERS`` global of the module that defines its class (official
    HRNet-OCR); the one value its own forward used in every bilinear interpolation (``observed``,
    from :class:`BilinearCalls`); else ``default``."""
    if isinstance(getattr(model, "align_corners", None), bool):
        return model.align_corners
    for module in model.modules():
        if isinstance(getattr(module, "align_corners", None), bool):
            return module.align_corners
    glob = _module_global(model)
    if glob is not None:
        return glob
    if observed and len(set(observed)) == 1:
        return observed[0]
    return default


def upsample_logits(logits: torch.Tensor, size: tuple[int, int], align_corners: bool) -> torch.Tensor:
    """B x K x h x w -> B x K x H x W, bilinear (as the model's own evaluation resizes)."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits.float(), size=tuple(size), mode="bilinear", align_corners=align_corners)
