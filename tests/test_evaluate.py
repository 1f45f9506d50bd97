"""Metrics checked against hand-computed values and a brute-force loop."""
from __future__ import annotations

import numpy as np
import pytest

from ocrviz.evaluate import confusion_matrix, metrics_from_confusion


def test_confusion_matrix_hand_example() -> None:
    target = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    conf = confusion_matrix(pred, target, 3)
    assert conf.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]
    m = metrics_from_confusion(conf, ["a", "b", "c"])
    # IoU a = 1/(2+1-1)=0.5, b = 2/(2+3-2)=2/3, c = 1
    assert m["per_class_iou"] == {"a": 0.5, "b": round(2 / 3, 4), "c": 1.0}
    assert m["miou"] == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    assert m["pixel_acc"] == pytest.approx(4 / 5)


def test_confusion_matrix_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    target = rng.integers(0, 6, size=(40, 50))
    target[rng.random(target.shape) < 0.1] = 255
    pred = rng.integers(0, 6, size=(40, 50))
    conf = confusion_matrix(pred, target, 6)
    brute = np.zeros((6, 6), int)
    for t, p in zip(target.ravel(), pred.ravel()):
        if t != 255:
            brute[t, p] += 1
    assert (conf == brute).all()


def test_absent_classes_do_not_count_in_miou() -> None:
    conf = np.array([[5, 0, 0], [0, 5, 0], [0, 0, 0]])
    m = metrics_from_confusion(conf)
    assert m["miou"] == 1.0 and m["per_class_iou"]["2"] is None


def test_bad_labels_are_reported() -> None:
    with pytest.raises(ValueError, match=r"class ids \[7\] outside 0..2"):
        confusion_matrix(np.zeros(3), np.array([0, 7, 1]), 3)
    with pytest.raises(ValueError, match="pixels"):
        confusion_matrix(np.zeros(3), np.zeros(4), 3)
