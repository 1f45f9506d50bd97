"""For the tests of the explorer's site entries: the inverse of ocrviz.widgets.site_payload's buffer specs
({b64, deflate, shuffle, fixed}), written again here (base64, inflate, byte planes -> items), and the class
masses of a coarse map drawn over the explorer's finer cells, computed with a reshape (not with
ocrviz.widgets.site_grids)."""
from __future__ import annotations

import base64
import zlib

import numpy as np


def raw(spec: dict) -> bytes:
    """The spec's raw little-endian bytes."""
    b = base64.b64decode(spec["b64"])
    if spec["deflate"]:
        b = zlib.decompress(b)
    n = spec["shuffle"]
    return np.frombuffer(b, np.uint8).reshape(n, -1).T.tobytes() if n > 1 else b


def f32(spec: dict) -> np.ndarray:
    """A float32 buffer (scales, off-grid masses, class masses, source rows)."""
    return np.frombuffer(raw(spec), "<f4")


def u8(spec: dict) -> np.ndarray:
    """An 8-bit buffer (the maps' codes)."""
    return np.frombuffer(raw(spec), np.uint8)


def block_mass(weights: np.ndarray, cls: np.ndarray, k: int) -> np.ndarray:
    """K masses of a gh x gw map drawn over the h x w explorer cells ``cls``, f x f cells per coarse cell."""
    gh, gw = weights.shape
    f = cls.shape[0] // gh
    assert cls.shape == (gh * f, gw * f)
    onehot = np.eye(k)[cls].reshape(gh, f, gw, f, k).mean(axis=(1, 3))          # gh x gw x K: block shares
    return np.einsum("rc,rck->k", weights, onehot)
