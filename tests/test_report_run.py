"""report_run's pieces against brute force: per-image confusion matrices, the even-spread flow, the OCR check."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ocrviz
from ocrviz.data.dataset import ToyCityDataset, val_split
from ocrviz.evaluate import confusion_matrix, evaluate
from ocrviz.report_run import even_spread_flow, no_ocr_reason

H, W = 64, 128


def test_evaluate_per_image_confusions_are_each_images_own() -> None:
    model = ocrviz.load_model("toycity-fcn")
    ds = ToyCityDataset(val_split(3), height=H, width=W)
    got = evaluate(model, ds, batch_size=2, per_image=True, cache_scenes=False)
    per = got["per_image_confusion"]
    assert per.shape == (3, 9, 9) and per.sum(0).tolist() == got["confusion"]
    for i in range(3):
        item = ds[i]
        with torch.no_grad():
            pred = model(item["image"][None]).argmax(1)[0].numpy()
        np.testing.assert_array_equal(per[i], confusion_matrix(pred, item["labels"].numpy(), 9))
    assert "per_image_confusion" not in evaluate(model, ds, batch_size=2)


def test_even_spread_flow_is_the_class_mix_each_pixel_sees() -> None:
    labs = [np.array([[0, 0, 1, 255]]), np.array([[1, 2, 2, 2]])]
    got = even_spread_flow(lambda: iter([(None, lab) for lab in labs]), 3)
    # class 0: 2 pixels, both in image 0 (mix 2/3, 1/3, 0); class 1: one pixel in each image
    np.testing.assert_allclose(got[0], [2 / 3, 1 / 3, 0])
    np.testing.assert_allclose(got[1], (np.array([2 / 3, 1 / 3, 0]) + np.array([0, 1 / 4, 3 / 4])) / 2)
    np.testing.assert_allclose(got[2], [0, 1 / 4, 3 / 4])
    assert np.allclose(got.sum(1), 1)


@pytest.mark.parametrize("name, has_ocr", [("toycity-ocr", True), ("toycity-aspp", False), ("toycity-fcn", False)])
def test_no_ocr_reason(name: str, has_ocr: bool) -> None:
    reason = no_ocr_reason(ocrviz.load_model(name))
    assert (reason is None) == has_ocr
    if reason:
        assert "not OCR" in reason and len(reason) < 60          # ASPP, FCN: no OCR head at all
