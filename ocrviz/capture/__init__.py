"""Capture intermediate tensors: ``capture``, ``run_with_cache``, ``Cache``.

    >>> logits, cache = run_with_cache(model, x)    # doctest: +SKIP
    >>> cache.sim_map.shape                         # B x HW x K

This subpackage shares its name with the public function ``ocrviz.capture``.
Once any code has imported ``ocrviz.capture`` (the package), the attribute
``ocrviz.capture`` is this module, not the function; the module is therefore
made callable and forwards to :func:`capture`, so that
``with ocrviz.capture(model) as cache:`` works in either case.
"""
from __future__ import annotations

import sys
import types
from typing import Any

from .cache import Cache, CacheKeyError, CaptureError
from .capture import capture, hook_names, run_with_cache
from .foreign import CaptureMismatchError, find_foreign

__all__ = ["capture", "run_with_cache", "Cache", "CaptureMismatchError", "CacheKeyError", "CaptureError",
           "hook_names", "find_foreign"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return capture(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
