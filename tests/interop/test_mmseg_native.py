"""The rest of MMSeg's OCRNet zoo (ResNet-101-D8, HRNetV2-W18-Small): MMSeg's own model, from the config in meta.

Real MMSeg builds each model from its own config file (random weights, random
BN statistics); the checkpoint holds ``meta["cfg"]`` as MMSeg 1.x's runner
writes it (``Config.pretty_text``).  ``from_checkpoint`` parses that text (never
runs it), lets MMSeg build the model, loads the weights, and capture works on it.
"""
from __future__ import annotations

import builtins
from pathlib import Path

import pytest
import torch

import ocrviz
from mmseg_env import bn_everywhere, import_mmseg
from ocrviz import capture
from ocrviz.checkpoint_mmseg import model_config
from ocrviz.checkpoints import CheckpointFormatError
from ocrviz.normalisation import normalisation_of
from random_bn import randomise_bn

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

CLASSES = [f"class {i}" for i in range(19)]
PALETTE = [[i, 2 * i, 3 * i] for i in range(19)]
SHAPE = (1, 3, 64, 128)


def config_path(mmseg, name: str) -> Path:
    path = Path(mmseg.__file__).parent / ".mim" / "configs" / "ocrnet" / f"{name}.py"
    assert path.is_file(), f"the MMSeg wheel ships no {path.name}"
    return path


def make(tmp_path, name: str, edit=lambda text: text):
    """(MMSeg's model, checkpoint path): the model MMSeg builds from its config, saved as its runner saves."""
    mmseg, MODELS, Config = import_mmseg()
    cfg = Config.fromfile(str(config_path(mmseg, name)))
    model_cfg = cfg.model.to_dict()
    for key in ("data_preprocessor", "pretrained"):
        model_cfg.pop(key, None)
    model_cfg["backbone"].pop("init_cfg", None)
    bn_everywhere(model_cfg)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg).eval()
    randomise_bn(model, 1, spread=0.1, conv_bias=True)
    meta = {"cfg": edit(cfg.pretty_text), "dataset_meta": {"classes": CLASSES, "palette": PALETTE},
            "mmengine_version": "0.10.7", "iter": 40000}
    path = tmp_path / f"{name}.pth"
    torch.save({"meta": meta, "state_dict": model.state_dict()}, path)
    return model, path


@pytest.mark.parametrize("name", ["ocrnet_r101-d8_4xb2-40k_cityscapes-512x1024",
                                  "ocrnet_hr18s_4xb2-40k_cityscapes-512x1024"])
def test_the_rest_of_the_zoo_is_mmsegs_own_model_with_capture(tmp_path, name):
    torch.set_num_threads(1)
    mm, path = make(tmp_path, name)
    ours = ocrviz.from_checkpoint(path)
    assert type(ours).__name__ == "CascadeEncoderDecoder" and ours.checkpoint_layout == "mmseg-native"
    assert not ours.training and (ours.num_classes, ours.align_corners) == (19, False)
    assert ours.class_names == CLASSES and ours.palette == [tuple(c) for c in PALETTE]
    assert normalisation_of(ours) == ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
    x = torch.randn(*SHAPE)
    with torch.no_grad():
        want = mm(x, mode="tensor")
        with capture(ours) as cache:
            got = ours(x, mode="tensor")
    assert want.std() > 0.05 and (got - want).abs().max() <= 1e-5
    hw = got.shape[-2] * got.shape[-1]
    assert cache.sim_map.shape == (1, hw, 19)                    # foreign adapter on MMSeg's own OCRHead
    assert torch.allclose(cache.sim_map.sum(-1), torch.ones(1, hw), atol=1e-5)


def test_a_bgr_config_reverses_the_stem_conv(tmp_path):
    name = "ocrnet_r101-d8_4xb2-40k_cityscapes-512x1024"
    mm, path = make(tmp_path, name, lambda t: t.replace("bgr_to_rgb=True", "bgr_to_rgb=False"))
    ours = ocrviz.from_checkpoint(path)
    assert ours.checkpoint_input_order == "bgr"
    rgb = torch.randn(*SHAPE)
    with torch.no_grad():
        assert (ours(rgb, mode="tensor") - mm(rgb.flip(1), mode="tensor")).abs().max() <= 1e-5


def test_the_config_is_parsed_never_run(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    name = "ocrnet_r101-d8_4xb2-40k_cityscapes-512x1024"
    _, path = make(tmp_path, name, lambda t: t.replace("type='CascadeEncoderDecoder'",
                                                       f"type=__import__('os').system('touch {marker}')"))
    monkeypatch.setattr(builtins, "eval", lambda *a, **k: pytest.fail("eval called"))
    with pytest.raises(CheckpointFormatError, match="no readable `model = dict"):
        ocrviz.from_checkpoint(path)
    assert not marker.exists()


def test_model_config_reads_0x_names_and_literals_only():
    text = ("norm_cfg = dict(type='SyncBN', requires_grad=True)\n"
            "model = dict(type='EncoderDecoder', backbone=dict(type='ResNetV1c', norm_cfg=norm_cfg, depth=50),\n"
            "             decode_head=[dict(type='FCNHead', norm_cfg=norm_cfg, dropout_ratio=-1)])\n")
    assert model_config({"config": text}) == {
        "type": "EncoderDecoder", "backbone": {"type": "ResNetV1c", "norm_cfg": {"type": "SyncBN",
                                                                                 "requires_grad": True}, "depth": 50},
        "decode_head": [{"type": "FCNHead", "norm_cfg": {"type": "SyncBN", "requires_grad": True},
                         "dropout_ratio": -1}]}
    assert model_config({"cfg": "model = dict(type='X', backbone=model)"}) is None          # refers to itself
    assert model_config({"cfg": "model = dict(type='X', n=len([1]))"}) is None
    assert model_config({"cfg": "model = dict(type=open('f').read())"}) is None


def test_without_mmseg_the_answer_says_how_to_install_it(tmp_path, monkeypatch):
    from ocrviz import checkpoint_mmseg

    _, path = make(tmp_path, "ocrnet_hr18s_4xb2-40k_cityscapes-512x1024")

    def missing():
        raise ImportError("MMSeg cannot be imported (ModuleNotFoundError: No module named 'mmseg')")
    monkeypatch.setattr(checkpoint_mmseg, "_registry", missing)
    with pytest.raises(CheckpointFormatError) as info:
        ocrviz.from_checkpoint(path)
    text = str(info.value)
    assert "HRNet is not ocrviz's" in text and "pip install" in text and "mmsegmentation" in text
