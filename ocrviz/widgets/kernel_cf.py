"""Counterfactual edits answered in the kernel, for OCR heads too large to ship to the page.

For small models the explorer's JS re-runs an edited sim row itself: the
payload carries the per-pixel head (``ocrviz.analysis.pixel_head``).  An
HRNet-W48 head at 1024 x 2048 would be 64 MiB of pixel features, so above
``payload.CF_MAX_BYTES`` the page sends the edit instead (the ``cf_request``
trait) and ``KernelCounterfactuals`` answers it with the same arithmetic:

* at once, the selected cell: its logits without and with the edit and the
  influence of each region (the predicted class's logit drop when that region
  is removed from the row and the row renormalised), float64 as in the page;
* then, when there is an edit, the same edit on every cell of the image: the
  class of each cell (float32 torch) and how many cells change.

The edit rule is the page's (``editedRow`` in explorer.js): dropped regions
get weight 0, the scaled region (``gain = [k, f]``, unless dropped) weight
f times its own, and the row is renormalised; a row left with no weight is
no edit.

Example::

    kcf = KernelCounterfactuals(data.pixel_head, data.sim_map, data.feat_hw)
    kcf.pixel({"key": "a", "cell": [3, 4], "dropped": [2], "gain": None})
    kcf.whole({"key": "a", "cell": [3, 4], "dropped": [2], "gain": None})   # (answer, uint8 h*w classes)

Requests carry ``key`` and ``edit`` (the page's own tags, echoed back), ``cell``
([row, col]), ``dropped`` (region indices) and ``gain`` ([k, f] or None).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ocrviz.analysis.pixel_head import PixelHead


def edit_rows(rows: np.ndarray, dropped: Sequence[int] = (), gain: Sequence[float] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Rows (N x K) with the page's edit applied; (edited rows N x K, N bools: the edit applies).

    Where the edit leaves a row with no weight, or there is no edit, the row is returned as given
    and its flag is False.
    """
    rows = np.asarray(rows, np.float64)
    k = rows.shape[1]
    factor = np.ones(k)
    if gain is not None and float(gain[1]) != 1.0:
        factor[int(gain[0])] = float(gain[1])
    factor[[int(d) for d in dropped]] = 0.0
    if not len(dropped) and (factor == 1).all():
        return rows, np.zeros(rows.shape[0], bool)
    edited = rows * factor                                                   # N x K
    total = edited.sum(1)                                                    # N
    ok = total > 0
    edited[ok] /= total[ok, None]
    edited[~ok] = rows[~ok]
    return edited, ok


def _request(request: dict, feat_hw: tuple[int, int], k: int) -> tuple[int, list[int], list[float] | None]:
    y, x = (int(v) for v in request["cell"])
    h, w = feat_hw
    if not (0 <= y < h and 0 <= x < w):
        raise ValueError(f"cell {[y, x]} is outside the {h} x {w} feature grid")
    dropped = sorted({int(d) for d in request.get("dropped") or []})
    gain = request.get("gain")
    if any(not 0 <= d < k for d in dropped) or (gain is not None and not 0 <= int(gain[0]) < k):
        raise ValueError(f"region index out of range 0..{k - 1}: dropped={dropped}, gain={gain}")
    if gain is not None and not (np.isfinite(float(gain[1])) and float(gain[1]) >= 0):
        raise ValueError(f"gain factor {gain[1]!r}: allowed are finite factors >= 0 (the slider's 0..4)")
    return y * w + x, dropped, (None if gain is None else [int(gain[0]), float(gain[1])])


class KernelCounterfactuals:
    """Answers the page's counterfactual requests from a ``PixelHead`` and the sim map it shows.

    ``sim``: HW x K, the rows the page shows; ``feat_hw``: (h, w).  The classes of every cell
    without an edit are computed once, on the first whole-image answer; the last edit's map is
    kept, so moving the pixel under a standing edit costs only the pixel's rows, and so is the part
    of the head no edit changes (``PixelHead.pixel_part``: HW x C floats, as large as the pixel
    features; half the work of each edit).  ``device``:
    where the whole-image re-runs go (the model's; the pixel's rows are float64 numpy).
    """

    def __init__(self, head: PixelHead, sim: np.ndarray, feat_hw: tuple[int, int], device: Any = "cpu") -> None:
        self.head, self.sim, self.feat_hw = head, np.asarray(sim), (int(feat_hw[0]), int(feat_hw[1]))
        self.device = device
        self._base_pred: np.ndarray | None = None
        self._pixel_part: Any = None
        self._last: tuple[tuple, np.ndarray] | None = None

    def pixel(self, request: dict) -> dict[str, Any]:
        """``{key, cell, base, influence, after}``: K logits without the edit, K influences, K logits
        with it (None: no edit)."""
        k = self.sim.shape[1]
        p, dropped, gain = _request(request, self.feat_hw, k)
        row = self.sim[p].astype(np.float64)                                  # K
        # K x K: row j without region j, by the page's rule (has[j]: some weight is left)
        drop_k, has = map(np.concatenate, zip(*(edit_rows(row[None], [j]) for j in range(k))))
        edited, applies = edit_rows(row[None], dropped, gain)
        logits = self.head.logits_rows(np.concatenate([row[None], drop_k, edited]), p)   # (K + 2) x K
        base, after = logits[0], logits[-1]
        c = int(np.argmax(base))
        influence = np.where(has, base[c] - logits[1:k + 1, c], 0.0)
        return {"key": request.get("key"), "edit": request.get("edit"), "cell": list(request["cell"]),
                "base": base.tolist(), "influence": influence.tolist(),
                "after": after.tolist() if applies[0] else None}

    def whole(self, request: dict) -> tuple[dict[str, Any], np.ndarray]:
        """The request's edit on every cell: ``({key, changed, cells}, h*w uint8 classes)``."""
        k = self.sim.shape[1]
        _, dropped, gain = _request(request, self.feat_hw, k)
        edit = (tuple(dropped), None if gain is None else tuple(gain))
        if self._base_pred is None:
            self._pixel_part = self.head.pixel_part(device=self.device)      # HW x C, kept for every edit
            self._base_pred = self.head.predict_all(self.sim, device=self.device, pixel_part=self._pixel_part)
        if self._last is None or self._last[0] != edit:
            rows, _ = edit_rows(self.sim, dropped, gain)
            self._last = (edit, self.head.predict_all(rows, device=self.device, pixel_part=self._pixel_part))
        pred = self._last[1]
        return ({"key": request.get("key"), "edit": request.get("edit"),
                 "changed": int((pred != self._base_pred).sum()), "cells": int(pred.size)}, pred)
