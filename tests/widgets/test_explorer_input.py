"""The explorer's door: the user's image is converted once, and what the explorer shows is unchanged.

The independent side builds the same view by hand: the picture and the normalised input written out
here in numpy, ``run_with_cache``, ``from_cache``, ``to_payload`` and ``pack_for_widget``; every synced
trait of the Explorer must equal it byte for byte.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ocrviz
from ocrviz.analysis import error_blame
from ocrviz.analysis.pixel_head import pixel_head
from ocrviz.widgets import Explorer
from ocrviz.widgets import explorer_input, payload
from ocrviz.widgets.payload import from_cache, pack_for_widget, to_payload

IMAGENET = (np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225]))
K = 4


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return ocrviz.create_model("ocrnet", num_classes=K, widths=(8, 8, 16, 16), mid_channels=16, key_channels=8,
                               class_names=["road", "car", "sky", "tree"]).eval()


def _picture(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (40, 56, 3), dtype=np.uint8)


def _by_hand(model, picture: np.ndarray, x: torch.Tensor, labels=None, blame=False) -> dict:
    _, cache = ocrviz.run_with_cache(model, x)
    data = from_cache(cache, picture, labels=labels, class_names=model.class_names, palette=model.palette,
                      output_stride=model.output_stride, pixel_head=pixel_head(model, cache),
                      blame=error_blame(model, picture, labels).category if blame else None)
    return pack_for_widget(to_payload(data, image_format="auto", cf_in_page=True, live=True), data)


def _normalised(picture: np.ndarray, mean, std) -> torch.Tensor:
    """(picture / 255 - mean) / std in float32 steps, as training normalises (so round-off agrees too)."""
    f = np.float32
    x = (picture.astype(f) / f(255) - np.asarray(mean, f)) / np.asarray(std, f)   # H x W x 3, float32
    return torch.from_numpy(x.transpose(2, 0, 1).copy())[None]                   # 1 x 3 x H x W


CASES = {
    "uint8": lambda p: (p, {}, p, _normalised(p, *IMAGENET)),
    "float 0..1": lambda p: (p / 255.0, {}, p, _normalised(p, *IMAGENET)),
    "mean/std": lambda p: (p, dict(mean=(100.0, 110.0, 120.0), std=(50.0, 60.0, 70.0)), p,
                           _normalised(p, np.array([100.0, 110.0, 120.0]) / 255, np.array([50.0, 60.0, 70.0]) / 255)),
    "transform": lambda p: (p, dict(transform=lambda a: torch.from_numpy(a.transpose(2, 0, 1).copy())[None] / 255.0),
                            p, torch.from_numpy(p.transpose(2, 0, 1).copy())[None] / 255.0),
    "tensor": lambda p: (torch.from_numpy(p.transpose(2, 0, 1).copy()).float() / 255.0, {}, p,
                         torch.from_numpy(p.transpose(2, 0, 1).copy()).float()[None] / 255.0),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_trait_equals_the_view_built_by_hand(model, case: str, monkeypatch) -> None:
    picture = _picture(1)
    image, kwargs, want_picture, want_x = CASES[case](picture)
    made: list = []                  # pictures already made
    conversions = []
    real = payload.to_uint8_image

    def counting(a):
        if not any(a is m for m in made):
            conversions.append(type(a).__name__)
        out = real(a)
        made.append(out)
        return out

    monkeypatch.setattr(explorer_input, "to_uint8_image", counting)
    monkeypatch.setattr(payload, "to_uint8_image", counting)
    ex = Explorer(model, image, **kwargs)
    assert len(conversions) == 1, conversions                                  # the user's image: converted once
    np.testing.assert_array_equal(ex.data.image, want_picture)
    want = _by_hand(model, want_picture, want_x)
    got = {k: getattr(ex, k) for k in want}
    for key, value in want.items():
        assert got[key] == value, key


def test_labels_and_blame_are_unchanged(model) -> None:
    picture = _picture(2)
    labels = np.random.default_rng(3).integers(0, K, picture.shape[:2])
    ex = Explorer(model, picture, labels)
    want = _by_hand(model, picture, _normalised(picture, *IMAGENET), labels=labels, blame=True)
    assert ex.packed["blame"] == want["packed"]["blame"] and ex.packed["gt"] == want["packed"]["gt"]
    assert {k: getattr(ex, k) for k in want} == want
