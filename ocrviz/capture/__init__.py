"""Capture intermediate tensors: ``capture``, ``run_with_cache``, ``Cache``.

    >>> logits, cache = run_with_cache(model, x)    # doctest: +SKIP
    >>> cache.sim_map.shape                         # B x HW x K

This subpackage shares its name with the public function ``ocrviz.capture``;
``ocrviz/__init__.py`` imports the function eagerly, after this package, so
the attribute ``ocrviz.capture`` is always the function.
"""
from __future__ import annotations

from .cache import Cache, CacheKeyError, CaptureError
from .capture import capture, hook_names, run_with_cache
from .foreign import CaptureMismatchError, find_foreign

__all__ = ["capture", "run_with_cache", "Cache", "CaptureMismatchError", "CacheKeyError", "CaptureError",
           "hook_names", "find_foreign"]
