"""openseg.pytorch checkpoints carry their config (``config_dict``): BGR input order and BGR-order statistics.

openseg's save_net writes ``{"config_dict": configer.to_dict(), "state_dict": ...}``;
its loaders read images with ``cv2.imread`` in ``data.input_mode`` order (BGR
in 39 of 41 configs), then ToTensor and ``Normalize(div_value, mean, std)``
channel by channel in that order.  The reference below feeds an openseg-keyed
network exactly so (written here from that public description); ocrviz
feeds RGB through ``normalise(image, *input_normalisation(model))``.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ocrviz
from ocrviz.normalisation import from_openseg, input_normalisation, normalise
from test_layouts import OCB, X_SHAPE, tiny, to_openseg

# configs/cityscapes/H_48_D_4.json (openseg aefc755), the parts the checkpoint's config_dict holds
CONFIG = {"dataset": "cityscapes", "method": "fcn_segmentor",
          "data": {"image_tool": "cv2", "input_mode": "BGR", "num_classes": 5},
          "normalize": {"div_value": 255.0, "mean_value": [0.485, 0.456, 0.406], "mean": [0.485, 0.456, 0.406],
                        "std": [0.229, 0.224, 0.225]},
          "network": {"backbone": "hrnet48", "model_name": "hrnet_w48_ocr", "bn_type": "torchbn"}}


def openseg_input(image_rgb: np.ndarray, config: dict) -> torch.Tensor:
    """openseg's test-time input: cv2's BGR array (input_mode BGR), ToTensor, Normalize(div_value, mean, std)."""
    img = image_rgb[..., ::-1] if config["data"]["input_mode"] == "BGR" else image_rgb      # cv2.imread is BGR
    x = torch.from_numpy(np.ascontiguousarray(img).transpose(2, 0, 1)).float()          # ToTensor: 3 x H x W
    norm = config["normalize"]
    x = x.div(norm["div_value"])
    for t, m, s in zip(x, norm["mean"], norm["std"]):
        t.sub_(m).div_(s)
    return x[None]                                                                       # 1 x 3 x H x W


@pytest.fixture
def openseg_file(tmp_path):
    """(reference network as openseg computes it, file openseg would save): conv biases in the OCR block."""
    reference = tiny(seed=5, aux_kernel_size=3)
    with torch.no_grad():                       # colour matters to this network, and its logits are not tiny
        reference.conv1.weight.mul_(10.0)
        reference.conv1.weight[:, 0].mul_(3.0)
        reference.cls_head.weight.mul_(100.0)
    sd = {k: v.clone() for k, v in to_openseg(reference.state_dict()).items()}
    g = torch.Generator().manual_seed(11)
    for conv in ["f_pixel.0", "f_pixel.2", "f_object.0", "f_object.2", "f_down.0", "f_up.0"]:
        module = reference.get_submodule(OCB + conv)
        bias = torch.randn(module.out_channels, generator=g) * 0.5
        sd[f"{OCB}{conv}.bias"] = bias
        module.register_forward_hook(lambda m, i, o, b=bias: o + b.view(1, -1, 1, 1))
    path = tmp_path / "hrnet_w48_ocr_iters40000.pth"
    torch.save({"config_dict": CONFIG, "state_dict": {f"module.{k}": v for k, v in sd.items()}}, path)
    return reference, path, sd


def image() -> np.ndarray:
    rng = np.random.default_rng(3)
    coarse = rng.integers(0, 256, (4, 6, 3))
    return np.kron(coarse, np.ones((8, 8, 1))).astype(np.uint8)[: X_SHAPE[2], : X_SHAPE[3]]   # H x W x 3


def test_from_openseg_reads_order_and_bgr_statistics():
    found = from_openseg(CONFIG)
    assert found.mean == pytest.approx((123.675, 116.28, 103.53)) and not found.rgb
    assert found.std == pytest.approx((58.395, 57.12, 57.375))
    assert found.as_rgb().mean == pytest.approx((103.53, 116.28, 123.675))    # openseg applies R's mean to B
    assert from_openseg({**CONFIG, "data": {"input_mode": "RGB"}}).rgb is True
    assert from_openseg({**CONFIG, "normalize": {"mean": [102.98, 115.95, 122.77], "std": [1, 1, 1],
                                                 "div_value": 1.0}}).mean == (102.98, 115.95, 122.77)
    for broken in ({}, {**CONFIG, "data": {}}, {**CONFIG, "normalize": {"mean": [1, 2], "std": [1, 1, 1]}},
                   {**CONFIG, "normalize": {**CONFIG["normalize"], "std": [0, 1, 1]}}, "not json", 7):
        assert from_openseg(broken) is None


def test_openseg_bgr_checkpoint_agrees_with_openseg_preprocessing(openseg_file):
    reference, path, _ = openseg_file
    img = image()
    with torch.no_grad():
        want = reference(openseg_input(img, CONFIG))
        model = ocrviz.from_checkpoint(path)
        assert (model.checkpoint_layout, model.checkpoint_input_order) == ("openseg", "bgr")
        got = model(normalise(img, *input_normalisation(model)))
    agreement = (got.argmax(1) == want.argmax(1)).float().mean().item()
    print(f"openseg BGR config: agreement {agreement}, max |logit diff| {(got - want).abs().max():.2e}")
    assert agreement == 1.0 and len(want.argmax(1).unique()) >= 2
    assert (got - want).abs().max() <= 1e-4


def test_without_reading_config_dict_the_prediction_differs(openseg_file, tmp_path):
    """Control: the same weights with the config dropped (what ocrviz did before) do not agree."""
    reference, _, sd = openseg_file
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "no_config.pth")
    img = image()
    with torch.no_grad():
        want = reference(openseg_input(img, CONFIG))
        model = ocrviz.from_checkpoint(tmp_path / "no_config.pth")
        got = model(normalise(img, *input_normalisation(model)))
    assert not hasattr(model, "checkpoint_input_order")
    agreement = (got.argmax(1) == want.argmax(1)).float().mean().item()
    print(f"config_dict ignored: agreement {agreement}, max |logit diff| {(got - want).abs().max():.2e}")
    assert (got - want).abs().max() > 1 and agreement < 0.99
