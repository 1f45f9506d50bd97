"""The overlay colours, named once: the explorer, the notebooks and the legends use these.

A notebook that says "errors are red" reads ``ERROR_NAME`` and draws with
``ERROR_RGB``; the explorer receives the same values in its payload
(``overlay_colours``), so the text and the picture cannot drift apart.
"""
from __future__ import annotations

ERROR_RGB = (228, 26, 28)      # a pixel whose prediction differs from the true class
ERROR_NAME = "red"
RIGHT_RGB = (60, 170, 70)      # a pixel predicted right (drawn paler than errors)
RIGHT_NAME = "green"
IGNORE_RGB = (128, 128, 128)   # label 255: not scored
IGNORE_NAME = "grey"
MARK_RGB = (255, 215, 0)       # pixels of a mask the caller passes (e.g. ToyCity's cue-free pixels)
MARK_NAME = "yellow"


def rgb01(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """(r, g, b) in 0..255 -> matplotlib's 0..1 floats."""
    return tuple(c / 255 for c in rgb)


def overlay_colours() -> dict[str, dict]:
    """What the explorer's payload carries: {role: {"rgb": [r, g, b], "name": str}}."""
    return {role: {"rgb": list(rgb), "name": name} for role, rgb, name in (
        ("error", ERROR_RGB, ERROR_NAME), ("right", RIGHT_RGB, RIGHT_NAME),
        ("ignore", IGNORE_RGB, IGNORE_NAME), ("mark", MARK_RGB, MARK_NAME))}
