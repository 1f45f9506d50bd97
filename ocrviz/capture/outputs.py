"""What a segmentation model returned: its main logits, and where to find its settings.

Models ocrviz did not write return their prediction in several shapes: the
official HRNet-OCR a list ``[aux, main]`` at 1/4 resolution, openseg a tuple
``(aux, main)``, MMSeg's ``EncoderDecoder`` in tensor mode one tensor,
torchvision-style models a dict with ``out``.  ``main_logits`` turns each into
one B x K x h x w tensor, or says what it got.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

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


def find_align_corners(model: nn.Module, default: bool = False) -> bool:
    """The model's ``align_corners`` setting: its own attribute, else the first submodule's
    (MMSeg decode heads carry one), else ``default``."""
    if isinstance(getattr(model, "align_corners", None), bool):
        return model.align_corners
    for module in model.modules():
        if isinstance(getattr(module, "align_corners", None), bool):
            return module.align_corners
    return default


def upsample_logits(logits: torch.Tensor, size: tuple[int, int], align_corners: bool) -> torch.Tensor:
    """B x K x h x w -> B x K x H x W, bilinear (as the model's own evaluation resizes)."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits.float(), size=tuple(size), mode="bilinear", align_corners=align_corners)
