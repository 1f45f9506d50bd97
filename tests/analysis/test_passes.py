"""image_pass (behind attention_report, error_blame, context_flow) feeds a model as it was trained:
with its own input statistics when it carries them (an MMSeg checkpoint's config), else ImageNet's."""
from __future__ import annotations

import numpy as np
import torch

import ocrviz
from ocrviz.analysis.passes import image_pass
from ocrviz.data.dataset import normalize


def _model():
    return ocrviz.create_model("ocrnet", num_classes=3, widths=(8, 8, 16, 16), mid_channels=16, key_channels=8).eval()


def _feats(model, x):
    with torch.no_grad():
        _, cache = ocrviz.run_with_cache(model, x)
    return cache.pixel_feats


def test_image_pass_uses_imagenet_by_default_and_the_models_own_statistics_when_it_has_them() -> None:
    model = _model()
    image = (np.random.default_rng(3).random((32, 48, 3)) * 255).astype(np.uint8)
    torch.testing.assert_close(image_pass(model, image).cache.pixel_feats, _feats(model, normalize(image)[None]),
                               rtol=0, atol=0)
    mean, std = (100.0, 110.0, 120.0), (50.0, 60.0, 70.0)                    # 0..255 units, as MMSeg writes them
    model.input_mean, model.input_std = mean, std
    x = (torch.from_numpy(image).permute(2, 0, 1).float() / 255 - torch.tensor(mean).view(3, 1, 1) / 255) \
        / (torch.tensor(std).view(3, 1, 1) / 255)                              # 3 x H x W, written out here
    got = image_pass(model, image).cache.pixel_feats
    torch.testing.assert_close(got, _feats(model, x[None]), rtol=1e-5, atol=1e-5)
    assert (got - _feats(model, normalize(image)[None])).abs().max() > 1e-3
