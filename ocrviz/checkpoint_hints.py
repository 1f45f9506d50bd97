"""Hints in a checkpoint mismatch report, in time linear in the number of keys.

* :func:`diagnose`: a recognised foreign layout (then: use
  ``ocrviz.from_checkpoint``), or a key prefix to strip or to add;
* :func:`suggest`: "did you mean" for the listed unexpected keys, each
  compared only with the missing keys of the same last name and shape (else
  the same shape), at most ``MAX_CANDIDATES`` of them.

Comparing every checkpoint key with every model key with difflib took 110 s
for an MMSeg checkpoint (1888 x 1890 keys); these take milliseconds.
"""
from __future__ import annotations

import difflib
from typing import Any, Sequence

import torch

from . import checkpoint_layouts as layouts

MAX_CANDIDATES = 50  # model keys one suggestion is compared with


def diagnose(sd: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
             unexpected: list[str], missing: list[str], conflicts: int = 0) -> list[str]:
    """One-line diagnoses in linear time: a known foreign layout, or a prefix to strip or add.

    The official layout is named only when shapes conflict (a model of another
    size: ``from_checkpoint`` builds the file's), not for a few odd keys.
    """
    lines = []
    stripped = layouts.strip_wrappers(sd)
    layout = layouts.detect(stripped)
    if layout in ("mmseg", "openseg") or (layout == "official" and conflicts):
        lines.append(f"  these look like {layouts.NAMES[layout]} keys: use ocrviz.from_checkpoint(path), "
                     f"which maps them and builds the model at the file's size")
        if layout != "official":
            return lines
    elif layouts.unsupported_reason(stripped):
        lines.append(f"  this looks like a checkpoint ocrviz cannot map: {layouts.unsupported_reason(stripped)}")
    if not unexpected or not missing:
        return lines
    found = _common_prefix(unexpected, target)
    if found:
        lines.append(f"  {found[1]} unexpected keys are model keys behind the prefix {found[0] + '.'!r}: strip it")
    found = _common_prefix(missing, set(unexpected))
    if found:
        lines.append(f"  {found[1]} missing keys are in the checkpoint without the prefix {found[0] + '.'!r}: add it")
    return lines


def _common_prefix(keys: Sequence[str], others: Any) -> tuple[str, int] | None:
    """(prefix, count): the first dotted component that, removed, turns most of ``keys`` into keys of
    ``others`` (at least 2 and a quarter of them), else None."""
    heads: dict[str, int] = {}
    for k in keys:
        head, _, rest = k.partition(".")
        if rest in others:
            heads[head] = heads.get(head, 0) + 1
    best = max(heads.items(), key=lambda t: t[1], default=None)
    return best if best is not None and best[1] >= max(2, len(keys) // 4) else None


def suggest(sd: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
            unexpected: list[str], missing: list[str]) -> list[str]:
    """``unexpected`` (the listed ones), each with a close missing key of the same shape, if any.

    Candidates are indexed by (last name, shape), else by shape alone (a typo
    in the last name); difflib sees at most ``MAX_CANDIDATES`` of them per
    key: O(listed x candidates), not O(checkpoint keys x model keys).
    """
    index: dict[tuple[str, tuple[int, ...]], list[str]] = {}
    by_shape: dict[tuple[int, ...], list[str]] = {}
    for k in missing:
        index.setdefault((k.rsplit(".", 1)[-1], tuple(target[k].shape)), []).append(k)
        by_shape.setdefault(tuple(target[k].shape), []).append(k)
    out = []
    for k in unexpected:
        value = sd[k]
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else ()
        pool = index.get((k.rsplit(".", 1)[-1], shape)) or by_shape.get(shape, [])
        tail = k.partition(".")[2]
        close = [tail] if tail in pool else difflib.get_close_matches(k, pool[:MAX_CANDIDATES], n=1, cutoff=0.6)
        out.append(f"{k} (did you mean {close[0]}?)" if close else k)
    return out
