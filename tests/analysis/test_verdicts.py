"""analysis.verdicts: each sentence follows from the report's own fields, and flips where they do."""
from __future__ import annotations

import dataclasses

import pytest

from ocrviz.analysis.report import AttentionReport
from ocrviz.analysis.verdicts import SMALL_DROP, attention_verdicts

NAMES = ("road", "car", "sky")


def _report(**kw) -> AttentionReport:
    base = dict(n_images=2, n_cells=100, num_classes=3, class_names=NAMES, effective_regions=2.5,
                kl_from_uniform=0.1, top_is_pred=0.4, top_is_soft=0.5, top_is_true=0.3,
                region_on_class=(0.9, 0.6, None), miou=0.8, miou_uniform_sim=0.79, miou_onehot_sim=0.5,
                miou_shuffled_sim=0.7, seed=0, region_on_class_chance=(0.4, 0.1, None))
    base.update(kw)
    return AttentionReport(**base)


def test_sentences_state_the_reports_numbers() -> None:
    v = attention_verdicts(_report())
    assert v.uniform_drop == pytest.approx(0.01) and v.onehot_drop == pytest.approx(0.3)
    assert v.shuffled_drop == pytest.approx(0.1) and v.verdict == "matters little on average"
    text = "\n".join(v.sentences)
    assert "2.5 effective regions of 3" in text and "true class for 30% of cells (1/K = 33%)" in text
    assert "0.790 with uniform rows (-0.010)" in text and "hurts more than none" in text
    assert "is not how this head works" in text and "0.500 (-0.300)" in text
    assert "median share of a region's weight on its class 0.75 (lowest 0.60, car)" in text
    assert "spread evenly would put a median 0.25 there" in text


def test_sentences_flip_with_the_numbers() -> None:
    v = attention_verdicts(_report(miou_uniform_sim=0.8 - SMALL_DROP - 0.01, miou_shuffled_sim=0.79,
                                   miou_onehot_sim=0.79, region_on_class=(0.2, 0.3, None)))
    text = "\n".join(v.sentences)
    assert v.verdict == "matters" and "It matters:" in text and "hurts less than none" in text
    assert "is how this head works" in text and "only in part" in text


def test_without_labels_only_the_spread_is_stated() -> None:
    r = _report(top_is_true=None, region_on_class=None, miou=None, miou_uniform_sim=None, miou_onehot_sim=None,
                miou_shuffled_sim=None, region_on_class_chance=None)
    v = attention_verdicts(r)
    assert v.verdict is None and len(v.sentences) == 1 and "(uniform rows: 3)" in v.sentences[0]
    assert "peaked" in attention_verdicts(dataclasses.replace(r, effective_regions=1.2)).sentences[0]
