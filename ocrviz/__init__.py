"""ocrviz: see where an OCRNet takes its context from.

Public names are imported lazily so that ``import ocrviz`` stays fast and a
notebook that only needs the data generator does not pay for the widgets.

    >>> import ocrviz
    >>> model = ocrviz.create_model("ocrnet", num_classes=5)
    >>> logits, cache = ocrviz.run_with_cache(model, x)      # doctest: +SKIP
    >>> cache.sim_map.shape                                  # B x HW x K
    >>> ocrviz.context_maps(cache, (y, x))                   # doctest: +SKIP
    [ContextMap(kind='ocr', ...)]                            # where pixel (y, x)'s context comes from
"""
from __future__ import annotations

import importlib
from typing import Any

# Imported eagerly: the subpackage ``ocrviz.capture`` and the function
# ``ocrviz.capture`` share a name, and a lazily imported subpackage would
# replace the function on the package the first time anything imports it.
from .capture import Cache, capture, run_with_cache

__version__ = "0.1.0"

_PUBLIC = {
    "create_model": "ocrviz.models",
    "load_model": "ocrviz.zoo",
    "load_checkpoint": "ocrviz.checkpoints",
    "save_checkpoint": "ocrviz.checkpoints",
    "from_checkpoint": "ocrviz.checkpoint_models",
    "Explorer": "ocrviz.widgets",
    "normalisation_of": "ocrviz.normalisation",
    "context_maps": "ocrviz.context",
    "ContextMap": "ocrviz.context",
}
__all__ = sorted([*_PUBLIC, "capture", "run_with_cache", "Cache"])


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'ocrviz' has no attribute {name!r}; public names: {', '.join(__all__)}")


def __dir__() -> list[str]:
    return __all__
