"""The sentences that say what an attention report means: ``attention_verdicts``.

Notebook 06 prints them under its report, and ``ocrviz report`` writes them
into its page; both call this function, so the page and the course cannot
disagree about what the same numbers mean.

Example::

    v = attention_verdicts(attention_report(model, images, labels))
    print("\\n".join(v.sentences))
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .report import AttentionReport

#: an mIoU drop below this, when every sim row is made uniform, reads as "matters little on average"
SMALL_DROP = 0.05


@dataclass(frozen=True)
class Verdicts:
    """The mIoU drops of the three sim-map counterfactuals (None without labels) and the sentences."""

    uniform_drop: float | None
    onehot_drop: float | None
    shuffled_drop: float | None
    verdict: str | None
    sentences: tuple[str, ...]


def _pct(v: float) -> str:
    return f"{v:.0%}"


def attention_verdicts(rep: AttentionReport) -> Verdicts:
    """What ``rep`` says, in sentences; each number in them is one of ``rep``'s fields (or a difference of two).

    Without labels only the spread of the sim rows can be stated (the mIoU
    sentences need a ground truth)."""
    k = rep.num_classes
    spread = (f"The sim map is spread out: {rep.effective_regions:.1f} effective regions of {k} per cell"
              if rep.effective_regions > k / 2 else
              f"The sim map is peaked: {rep.effective_regions:.1f} effective regions of {k} per cell")
    if rep.top_is_true is None:
        return Verdicts(None, None, None, None, (spread + f" (uniform rows: {k}).",))
    sentences = [spread + f", and its top region is the cell's true class for {_pct(rep.top_is_true)} of cells "
                 f"(1/K = {_pct(1 / k)})."]
    uniform_drop = rep.miou - rep.miou_uniform_sim
    onehot_drop = rep.miou - rep.miou_onehot_sim
    shuffled_drop = rep.miou - rep.miou_shuffled_sim
    verdict = "matters little on average" if uniform_drop < SMALL_DROP else "matters"
    sentences += [
        f"Does the relation matter?  It {verdict}: mIoU {rep.miou:.3f} with the model's own rows, "
        f"{rep.miou_uniform_sim:.3f} with uniform rows (-{uniform_drop:.3f}).",
        f"A wrong relation hurts {'more' if shuffled_drop > uniform_drop else 'less'} than none: rows of other "
        f"pixels give {rep.miou_shuffled_sim:.3f} (-{shuffled_drop:.3f}).",
        f"And 'attend to your own object' is {'not ' if onehot_drop > uniform_drop else ''}how this head works: "
        f"one-hot rows on the soft-region class give {rep.miou_onehot_sim:.3f} (-{onehot_drop:.3f})."]
    roc = rep.region_on_class or ()
    known = [v for v in roc if v is not None]
    if known:
        low = int(np.nanargmin([np.nan if v is None else v for v in roc]))
        even = [v for v in (rep.region_on_class_chance or ()) if v is not None]
        tail = f"; a region spread evenly would put a median {np.median(even):.2f} there" if even else ""
        sentences.append(f"The soft regions do sit on their objects: median share of a region's weight on its class "
                         f"{np.median(known):.2f} (lowest {min(known):.2f}, {rep.class_names[low]}){tail}."
                         if np.median(known) >= 0.5 else
                         f"The soft regions sit on their objects only in part: median share of a region's weight "
                         f"on its class {np.median(known):.2f} (lowest {min(known):.2f}, {rep.class_names[low]}){tail}.")
    return Verdicts(uniform_drop, onehot_drop, shuffled_drop, verdict, tuple(sentences))
