"""Will this image fit in memory?  Estimate before the work, refuse with the size that would fit.

An 8000 x 8000 image through the Explorer peaked at 7.3 GB and died with
``MemoryError`` after 52 s.  ``check_image_fits`` answers in well under a second
instead: one small probe forward (128 x 128) measures the model's live
activation memory per pixel, an Explorer needs ``EXPLORER_FACTOR`` times that
(measured, below), and the total is compared with the memory this process can
still get (``MemAvailable``, and the container's cgroup limit when there is one).

Measured on toycity-ocr (CPU, float32, peak RSS growth of ``Explorer(model, image)``
in a fresh process started from a shell): 157 MB at 1024 x 1024, 501 MB at 2048 x 2048, i.e. 109 bytes
per pixel at the margin plus ~50 MB fixed; the probe counts 49 bytes per pixel of
live module outputs, so the Explorer costs 2.2 x the probe.  ``EXPLORER_FACTOR`` is
2.5 (a margin for allocator slack), ``FIXED_BYTES`` 64 MB.

    >>> check_image_fits(model, (8000, 8000))          # doctest: +SKIP
    ValueError: an image of 8000 x 8000 (64.0 Mpx) needs about 9.9 GB (154 bytes per pixel, ...), but ...
"""
from __future__ import annotations

import math
import weakref
from typing import Any

PROBE_SIDE = 128
EXPLORER_FACTOR = 2.5
FIXED_BYTES = 64 * 2 ** 20
USABLE = 0.8                                   # leave a fifth of what is available to everything else
SKIP_BELOW_PIXELS = 1024 * 1024                # 1 Mpx: never worth a probe (toycity-ocr: ~170 MB)


def available_bytes() -> int:
    """Memory this process can still allocate: MemAvailable, capped by a cgroup v2/v1 limit."""
    avail = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    if avail is None:
        try:
            import psutil

            avail = int(psutil.virtual_memory().available)
        except ImportError:                                     # pragma: no cover
            return 2 ** 62
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file) as f:
                limit = f.read().strip()
            with open(usage_file) as f:
                usage = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2 ** 60:
            avail = min(avail, max(0, int(limit) - usage))
        break
    return avail


def live_bytes_per_pixel(model: Any, side: int = PROBE_SIDE) -> float:
    """Peak bytes of module outputs alive at once in one no-grad forward, per input pixel.

    Every module's output storage is counted from the moment it appears until its tensor is
    freed (a weak reference), on a ``side`` x ``side`` input on the model's own device."""
    import torch

    live: dict[int, int] = {}
    cur = peak = 0

    def release(ptr: int) -> None:
        nonlocal cur
        cur -= live.pop(ptr, 0)

    def add(t: Any) -> None:
        nonlocal cur, peak
        if isinstance(t, (tuple, list)):
            for v in t:
                add(v)
        elif isinstance(t, dict):
            for v in t.values():
                add(v)
        elif torch.is_tensor(t):
            ptr = t.untyped_storage().data_ptr()
            if ptr and ptr not in live:
                live[ptr] = t.untyped_storage().nbytes()
                cur += live[ptr]
                peak = max(peak, cur)
                weakref.finalize(t, release, ptr)

    p = next(iter(model.parameters()), None)
    x = torch.zeros(1, 3, side, side, device=p.device if p is not None else "cpu")
    handles = [m.register_forward_hook(lambda m, i, o: add(o)) for m in model.modules()]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return (peak + x.numel() * x.element_size()) / (side * side)


def estimate_explorer_bytes(model: Any, hw: tuple[int, int], per_pixel: float | None = None) -> int:
    """Estimated peak memory of ``Explorer(model, image)`` for an H x W image."""
    per_pixel = live_bytes_per_pixel(model) if per_pixel is None else per_pixel
    return int(FIXED_BYTES + EXPLORER_FACTOR * per_pixel * hw[0] * hw[1])


def check_image_fits(model: Any, hw: tuple[int, int], *, available: int | None = None) -> None:
    """``ValueError`` before any work when an H x W image would not fit, naming the largest side that would."""
    h, w = int(hw[0]), int(hw[1])
    if h * w <= SKIP_BELOW_PIXELS:
        return
    avail = available_bytes() if available is None else int(available)
    try:
        per_pixel = live_bytes_per_pixel(model)
    except Exception:                          # a model that cannot run a 128 x 128 probe: the real run will say why
        return
    need = estimate_explorer_bytes(model, (h, w), per_pixel)
    usable = USABLE * avail
    if need <= usable:
        return
    scale = math.sqrt(max(0.0, usable - FIXED_BYTES) / (EXPLORER_FACTOR * per_pixel * h * w))
    side = int(max(h, w) * scale) // 32 * 32
    fix = (f"shrink it so the longer side is at most {side} (prepare_image(img, max_side={side}) or "
           f"ocrviz explain --max-side {side})" if side >= 32 else "free memory or use a machine with more")
    raise ValueError(f"an image of {h} x {w} ({h * w / 1e6:.1f} Mpx) needs about {need / 1e9:.1f} GB "
                     f"({EXPLORER_FACTOR * per_pixel:.0f} bytes per pixel, from a {PROBE_SIDE} x "
                     f"{PROBE_SIDE} probe forward), but {avail / 1e9:.1f} GB is available here; {fix}")


def image_hw(image: Any) -> tuple[int, int] | None:
    """H, W of an H x W x 3 array or a (1 x) 3 x H x W tensor/array; None when the shape says neither."""
    shape = tuple(getattr(image, "shape", ()) or ())
    if len(shape) == 3 and shape[2] == 3:
        return shape[0], shape[1]
    if len(shape) in (3, 4) and shape[-3] == 3:
        return shape[-2], shape[-1]
    return None


__all__ = ["available_bytes", "live_bytes_per_pixel", "estimate_explorer_bytes", "check_image_fits", "image_hw"]