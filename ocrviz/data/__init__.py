"""ocrviz.data: the ToyCity generator and its cue-free masks, dataset folders and image loading.

Names are resolved lazily: ``from ocrviz.data import make_scene`` loads only
the generator module, not the folder readers or the image I/O.

    >>> from ocrviz.data import make_scene, CLASSES
    >>> make_scene(0).labels.max() < len(CLASSES)
    True
"""
from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    **dict.fromkeys(["make_scene", "Scene", "CLASSES", "PALETTE", "NUM_CLASSES", "IGNORE_INDEX",
                     "THING_CLASSES", "AMBIGUITY_KINDS", "CITYSCAPES_TRAIN_IDS", "colorize"],
                    "ocrviz.data.toycity"),
    **dict.fromkeys(["cue_free", "CUE_FREE_RADIUS"], "ocrviz.data.ambiguity"),
    **dict.fromkeys(["ToyCityDataset", "TRAIN_SEEDS", "VAL_SEEDS", "MEAN", "STD", "normalize",
                     "denormalize", "val_split"], "ocrviz.data.dataset"),
    **dict.fromkeys(["load_image", "prepare_image", "pad_to_stride", "to_tensor", "crop_back",
                     "Prepared", "ImageLoadError"], "ocrviz.data.images"),
    **dict.fromkeys(["CityscapesFolder", "ADE20KFolder", "MaskFolder", "CITYSCAPES_CLASSES",
                     "CITYSCAPES_PALETTE", "ADE20K_CLASSES", "ADE20K_PALETTE", "LABELID_TO_TRAINID",
                     "labelids_to_trainids"], "ocrviz.data.folders"),
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'ocrviz.data' has no attribute {name!r}; public names: {', '.join(__all__)}")


def __dir__() -> list[str]:
    return __all__
