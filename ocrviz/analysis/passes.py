"""One image through an OCR model for the dataset-level analyses.

``image_pass`` normalises an H x W x 3 uint8 image (with the model's own
statistics, ``ocrviz.normalisation.input_normalisation``, else ImageNet's), runs one captured forward
(eval mode, no grad) and returns what attention_report, error_blame and
context_flow need; ``to_image`` upsamples head logits (h x w) to the image the
way the model's own forward does (bilinear, the model's ``align_corners``:
True for ocrviz's models and official HRNet-OCR, False for MMSeg-trained
weights), so metrics computed from counterfactual logits are on the same
footing as the model's prediction.

Example::

    p = image_pass(model, scene.image)
    p.cache.sim_map.shape, p.pred.shape        # 1 x HW x K, H x W
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..capture import Cache, run_with_cache
from ..capture.outputs import BilinearCalls, find_align_corners, upsample_logits
from ..normalisation import input_normalisation, normalise
from ..evaluate import class_ids


@dataclass
class ImagePass:
    """``cache`` of one 1 x 3 x H x W forward; ``pred`` H x W class ids of the model's own output."""

    cache: Cache
    image_hw: tuple[int, int]
    feat_hw: tuple[int, int]
    pred: torch.Tensor
    align_corners: bool

    @property
    def stride(self) -> int:
        return self.image_hw[0] // self.feat_hw[0]

    def to_image(self, head_logits: torch.Tensor) -> torch.Tensor:
        """B x K x h x w -> B x H x W class ids (upsampled as the model's forward does)."""
        return class_ids(upsample_logits(head_logits, self.image_hw, self.align_corners))


def model_device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def check_image(image: Any, index: int | None = None) -> np.ndarray:
    """An H x W x 3 uint8 array, or a ValueError saying what was given."""
    arr = np.asarray(image)
    where = "" if index is None else f"image {index}: "
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"{where}expected an H x W x 3 uint8 array, got shape {arr.shape} dtype {arr.dtype}; "
                         f"for a float model input use ocrviz.data.dataset.denormalize first")
    return arr


def check_labels(labels: Any, image_hw: tuple[int, int], index: int | None = None) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.shape != tuple(image_hw):
        where = "" if index is None else f"image {index}: "
        raise ValueError(f"{where}labels have shape {lab.shape} but the image is {image_hw[0]} x {image_hw[1]}; "
                         f"give an H x W class map (255 = ignore)")
    return lab.astype(np.int64)


@torch.no_grad()
def image_pass(model: nn.Module, image: Any, index: int | None = None) -> ImagePass:
    """Normalise, capture and predict one image (the model must already be in eval mode)."""
    arr = check_image(image, index)
    x = normalise(arr, *input_normalisation(model)).to(model_device(model))   # 1 x 3 x H x W (the model's own)
    with BilinearCalls() as calls:
        out, cache = run_with_cache(model, x)
    align = find_align_corners(model, default=True, observed=calls.seen)
    size = tuple(arr.shape[:2])
    logits = out if isinstance(out, torch.Tensor) and tuple(out.shape[-2:]) == size else None
    if logits is None:                                                     # foreign outputs: [aux, main] ...
        from ..capture.outputs import main_logits
        logits = upsample_logits(main_logits(out), size, align)           # 1 x K x H x W
    return ImagePass(cache, size, cache.feature_size, class_ids(logits)[0].cpu(), align)
