"""Input normalisation from an MMSeg checkpoint's meta config: read (never run), kept, used by default.

MMSeg 1.x writes ``meta["cfg"]`` (the runner's ``cfg.pretty_text``; the real
OCRNet-HR18 one from the installed wheel when it ships its configs), MMSeg
0.x ``meta["config"]`` with ``img_norm_cfg``.  Real MMSeg's preprocessing
against ocrviz's is in test_mmseg.py.
"""
from __future__ import annotations

import builtins
import warnings

import numpy as np
import pytest
import torch

import ocrviz
from mmseg_env import hr18_cfg_text, import_mmseg
from ocrviz import checkpoint_layouts as layouts
from ocrviz import save_checkpoint
from ocrviz.models.hrnet import HRNetW48OCR
from ocrviz.normalisation import (IMAGENET_MEAN, IMAGENET_STD, Normalisation, from_config, from_meta,
                                  input_normalisation, normalisation_of)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")   # mmengine's own notices

IMAGENET = Normalisation(IMAGENET_MEAN, IMAGENET_STD, True)
# MMSeg 0.x configs/_base_/datasets/cityscapes.py as its pretty_text writes it into meta["config"] (trimmed).
CONFIG_0X = """\
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='CascadeEncoderDecoder',
    num_stages=2,
    pretrained='open-mmlab://msra/hrnetv2_w18',
    test_cfg=dict(mode='whole'))
dataset_type = 'CityscapesDataset'
data_root = 'data/cityscapes/'
img_norm_cfg = dict(
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)
crop_size = (512, 1024)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='MultiScaleFlipAug',
        img_scale=(2048, 1024),
        flip=False,
        transforms=[
            dict(type='Resize', keep_ratio=True),
            dict(type='RandomFlip'),
            dict(
                type='Normalize',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                to_rgb=True),
            dict(type='ImageToTensor', keys=['img']),
            dict(type='Collect', keys=['img'])
        ])
]
"""
CAFFE_0X = ("img_norm_cfg = dict(\n    mean=[103.53, 116.28, 123.675], std=[1.0, 1.0, 1.0], to_rgb=False)\n"
            "test_pipeline = [dict(type='LoadImageFromFile')]\n")


def to_mmseg(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """ocrviz HRNet-OCR keys -> MMSeg OCRNet keys (the inverse of the renames; MMSeg's extra biases dropped)."""
    out = {}
    for k, v in sd.items():
        if k.rsplit(".", 1)[0] in layouts.MMSEG_ZERO_BIASES and k.endswith(".bias"):
            continue
        new_to_old = [(new, old) for old, new in layouts.MMSEG_RENAMES if new and k.startswith(new)]
        out[new_to_old[0][1] + k[len(new_to_old[0][0]):] if new_to_old else "backbone." + k] = v
    return out


@pytest.fixture(scope="module")
def mmseg_state_dict() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    sd = to_mmseg(HRNetW48OCR(num_classes=3, width=4, ocr_mid_channels=16, ocr_key_channels=8).state_dict())
    assert layouts.detect(sd) == "mmseg"
    return sd


def checkpoint(tmp_path, sd, meta: dict, name: str = "ocrnet.pth"):
    torch.save({"meta": meta, "state_dict": sd}, tmp_path / name)
    return tmp_path / name


# ---------------------------------------------------------------- parsing
def test_mmseg_1x_cfg_text_gives_the_data_preprocessor():
    mmseg, _, Config = import_mmseg()
    text, source = hr18_cfg_text(mmseg, Config)
    assert "data_preprocessor" in text, source
    assert from_meta({"cfg": text, "seed": 0, "experiment_name": "x"}) == IMAGENET
    bgr = from_config(text.replace("bgr_to_rgb=True", "bgr_to_rgb=False"))
    assert bgr == Normalisation(IMAGENET_MEAN, IMAGENET_STD, rgb=False)
    assert bgr.as_rgb() == Normalisation(IMAGENET_MEAN[::-1], IMAGENET_STD[::-1], True)
    no_flag = from_config(text.replace("bgr_to_rgb=True,", ""))   # SegDataPreProcessor's default: no swap
    assert no_flag is not None and not no_flag.rgb


def test_model_data_preprocessor_wins_over_the_top_level_one():
    text = ("data_preprocessor = dict(mean=[1, 2, 3], std=[4, 5, 6], bgr_to_rgb=True)\n"
            "model = dict(type='EncoderDecoder', data_preprocessor=dict(mean=[10, 20, 30], std=[1, 2, 3], "
            "rgb_to_bgr=True))\n")
    assert from_config(text) == Normalisation((10.0, 20.0, 30.0), (1.0, 2.0, 3.0), True)
    assert from_config({"model": {"data_preprocessor": {"mean": [10, 20, 30], "std": [1, 2, 3],
                                                        "bgr_to_rgb": True}}}).mean == (10.0, 20.0, 30.0)


def test_mmseg_0x_img_norm_cfg_text():
    assert from_meta({"config": CONFIG_0X, "CLASSES": ["a"]}) == IMAGENET
    assert from_config(CAFFE_0X) == Normalisation((103.53, 116.28, 123.675), (1.0, 1.0, 1.0), rgb=False)
    only_pipeline = CONFIG_0X.replace("img_norm_cfg = dict(\n    mean=[123.675, 116.28, 103.53], "
                                      "std=[58.395, 57.12, 57.375], to_rgb=True)\n", "")
    assert "img_norm_cfg" not in only_pipeline and from_config(only_pipeline) == IMAGENET   # its Normalize step
    assert from_config({"img_norm_cfg": {"mean": [1, 2, 3], "std": [1, 1, 1], "to_rgb": False}}).rgb is False


@pytest.mark.parametrize("config", [None, "", "model = dict(type='EncoderDecoder')", "not python (",
                                    "data_preprocessor = dict(type='SegDataPreProcessor', size=(512, 1024))",
                                    "img_norm_cfg = dict(mean=[1, 2], std=[1, 1])", {"model": {}}, 42,
                                    "img_norm_cfg = dict(mean=" + "[" * 100_000 + "]" * 100_000 + ")"])
def test_no_readable_normalisation_is_none(config):     # a text too deeply nested to parse included
    assert from_config(config) is None


MALICIOUS = [
    "img_norm_cfg = dict(mean=__import__('os').system('touch {m}'), std=[1, 1, 1])",
    "__import__('os').system('touch {m}')\nimg_norm_cfg = dict(mean=[1, 2, 3], std=[1, 1, 1], to_rgb=True)",
    "model = dict(data_preprocessor=dict(mean=[1, 2, 3], std=[1, 1, 1], bgr_to_rgb=open('{m}', 'w').close()))",
    "data_preprocessor = dict(mean=[__import__('os').system('touch {m}'), 2, 3], std=[1, 1, 1], bgr_to_rgb=True)",
    "data_preprocessor = dict(mean=[1, 2, 3], std=[1, 1, 1], bgr_to_rgb=True)\n"
    "class X:\n    def __init_subclass__(cls): __import__('os').system('touch {m}')\n"
    "exec(\"open('{m}', 'w')\")",
]


@pytest.mark.parametrize("template", MALICIOUS)
def test_a_malicious_config_is_never_run(tmp_path, monkeypatch, mmseg_state_dict, template):
    marker = tmp_path / "ran"
    text = template.format(m=marker)

    def guard(real):
        def run(source, *args, **kwargs):            # imports exec their modules' code objects: let those run
            if isinstance(source, (str, bytes)) or not getattr(source, "co_filename", "").endswith(".py"):
                raise AssertionError(f"the config text was evaluated: {source!r}")
            return real(source, *args, **kwargs)
        return run
    monkeypatch.setattr(builtins, "eval", guard(builtins.eval))
    monkeypatch.setattr(builtins, "exec", guard(builtins.exec))
    found = from_meta({"cfg": text})
    readable = "mean=[1, 2, 3]" in text and "bgr_to_rgb=open" not in text
    assert found == (Normalisation((1.0, 2.0, 3.0), (1.0, 1.0, 1.0), True) if readable else None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = ocrviz.from_checkpoint(checkpoint(tmp_path, mmseg_state_dict, {"config": text}))
    assert not marker.exists()
    if readable:
        assert normalisation_of(model) == ((1.0, 2.0, 3.0), (1.0, 1.0, 1.0))
    else:
        assert normalisation_of(model) is None
        assert any("could not read" in str(w.message) for w in caught)


# ---------------------------------------------------------------- on the loaded model
def test_from_checkpoint_keeps_the_configs_normalisation(tmp_path, mmseg_state_dict):
    model = ocrviz.from_checkpoint(checkpoint(tmp_path, mmseg_state_dict, {"config": CAFFE_0X}))
    assert (model.input_mean, model.input_std, model.checkpoint_input_order) == (
        (123.675, 116.28, 103.53), (1.0, 1.0, 1.0), "bgr")
    # conv1 reordered for RGB: the BGR network on a BGR image = ours on the RGB image
    assert torch.equal(model.conv1.weight, mmseg_state_dict["backbone.conv1.weight"].flip(1))
    assert ocrviz.normalisation_of(model) == ((123.675, 116.28, 103.53), (1.0, 1.0, 1.0))
    assert input_normalisation(model) == ([123.675, 116.28, 103.53], [1.0, 1.0, 1.0])
    assert input_normalisation(model, mean=[0.5] * 3) == ([0.5] * 3, None)          # the caller's win
    again = ocrviz.from_checkpoint(save_checkpoint(model, tmp_path / "again.safetensors"))
    assert (again.input_mean, again.input_std) == (model.input_mean, model.input_std)
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(again(x), model(x))


def test_without_a_config_the_imagenet_default_stays(tmp_path, mmseg_state_dict):
    from ocrviz.data.dataset import normalize
    from ocrviz.widgets.explorer import _model_input

    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # nothing to warn about
        model = ocrviz.from_checkpoint(checkpoint(tmp_path, mmseg_state_dict, {"CLASSES": ["a", "b", "c"]}))
    assert not hasattr(model, "input_mean") and not hasattr(model, "checkpoint_input_order")
    assert normalisation_of(model) is None and input_normalisation(model) == (None, None)
    assert torch.equal(model.conv1.weight, mmseg_state_dict["backbone.conv1.weight"])
    image = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    assert torch.allclose(_model_input(image, None, *input_normalisation(model)), normalize(image)[None])
    imagenet = ocrviz.from_checkpoint(checkpoint(tmp_path, mmseg_state_dict, {"config": CONFIG_0X}))
    assert normalisation_of(imagenet) == (IMAGENET_MEAN, IMAGENET_STD)
    assert input_normalisation(imagenet) == (None, None)      # ImageNet's: ocrviz's default input, as is


def test_an_mmseg_models_own_data_preprocessor():
    import_mmseg()
    from mmseg.models import SegDataPreProcessor

    holder = torch.nn.Module()
    holder.data_preprocessor = SegDataPreProcessor(mean=[1, 2, 3], std=[4, 5, 6], bgr_to_rgb=True)
    assert normalisation_of(holder) == ((1.0, 2.0, 3.0), (4.0, 5.0, 6.0))
    holder.data_preprocessor = SegDataPreProcessor()                      # no mean: says nothing
    assert normalisation_of(holder) is None
    holder.data_preprocessor = SegDataPreProcessor(mean=[1, 2, 3], std=[4, 5, 6])   # BGR input
    with pytest.raises(ValueError, match="BGR.*ocrviz.from_checkpoint.*transform="):
        normalisation_of(holder)
