"""Input checks shared by every segmentation model's ``forward``.

One function, :func:`validate_input`, so that ``SegModel`` and ``HRNetW48OCR``
reject bad inputs with the same words.  Errors say what was given, what is
allowed and how to fix it.

    >>> validate_input(torch.zeros(1, 3, 64, 64), output_stride=8)   # passes
    >>> validate_input(torch.zeros(3, 64, 64), output_stride=8)      # doctest: +SKIP
    ValueError: expected a batch B x 3 x H x W, got a 3-D tensor of shape (3, 64, 64); add the batch axis with x.unsqueeze(0)
"""
from __future__ import annotations

from typing import Any

import torch


def validate_input(x: Any, output_stride: int, in_channels: int = 3) -> None:
    """Raise ``TypeError`` / ``ValueError`` unless ``x`` is a float B x C x H x W batch.

    Rules: a ``torch.Tensor``; 4-D; ``in_channels`` channels (3, RGB); a
    floating dtype (normalised image, not raw ``uint8`` pixels); batch of at
    least one; H and W at least ``output_stride`` (so that the feature map has
    at least one pixel).  H and W need not be multiples of the stride: logits
    are always upsampled back to exactly H x W.
    """
    if not isinstance(x, torch.Tensor):
        hint = " (convert with torch.as_tensor(...) and normalise)" if hasattr(x, "shape") else ""
        raise TypeError(f"expected a torch.Tensor of shape B x {in_channels} x H x W, got {type(x).__name__}{hint}")
    if x.ndim != 4:
        fix = "; add the batch axis with x.unsqueeze(0)" if x.ndim == 3 else ""
        raise ValueError(f"expected a batch B x {in_channels} x H x W, got a {x.ndim}-D tensor of shape "
                         f"{tuple(x.shape)}{fix}")
    b, c, h, w = x.shape
    if c != in_channels:
        fix = "; channels-last input? use x.permute(0, 3, 1, 2)" if x.shape[-1] == in_channels else ""
        raise ValueError(f"expected {in_channels} channels (B x {in_channels} x H x W), got shape {tuple(x.shape)}{fix}")
    if not x.is_floating_point():
        raise TypeError(f"expected a floating-point tensor (normalised image), got dtype {x.dtype}; "
                        f"convert with x.float() / 255 and normalise with the model's mean and std")
    if b == 0:
        raise ValueError(f"got an empty batch of shape {tuple(x.shape)}; pass at least one image")
    if h < output_stride or w < output_stride:
        raise ValueError(f"input {h} x {w} is smaller than the model's output stride {output_stride}; "
                         f"H and W must each be at least {output_stride} (resize or pad the image)")
