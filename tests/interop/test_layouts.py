"""from_checkpoint on the official HRNet-OCR, MMSeg and openseg layouts, without their code.

State dicts come from the key manifests in tests/reference/ (shapes on the meta
device: no memory) or from ocrviz's own small models with their keys renamed
the way each upstream names them (written out here, in the inverse direction
of ocrviz's mapping).
"""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import ocrviz
from random_bn import randomise_bn
from ocrviz import checkpoint_layouts as layouts
from ocrviz import run_with_cache, save_checkpoint
from ocrviz.checkpoints import CheckpointFormatError, CheckpointMismatchError, load_checkpoint
from ocrviz.models import create_model
from ocrviz.models.hrnet import HRNetW48OCR

OCR_PREFIXES = ("conv3x3_ocr.", "ocr_distri_head.", "cls_head.", "aux_head.")
OCB = "ocr_distri_head.object_context_block."
X_SHAPE = (1, 3, 32, 48)


def manifest(reference_dir, name: str, part: str | None = None) -> dict[str, torch.Tensor]:
    data = json.loads((reference_dir / name).read_text())
    entries = (data[part] if part else data)["state_dict"]
    return {k: torch.empty(shape, device="meta") for k, shape in entries}


def shapes(sd) -> list[tuple[str, tuple[int, ...]]]:
    return sorted((k, tuple(v.shape)) for k, v in sd.items())


def meta_model(**kw) -> HRNetW48OCR:
    with torch.device("meta"):
        return HRNetW48OCR(**kw)


def tiny(seed: int = 0, **kw) -> HRNetW48OCR:
    """A small HRNet-OCR with random BN statistics (so that every tensor matters)."""
    torch.manual_seed(seed)
    model = HRNetW48OCR(num_classes=5, width=4, ocr_mid_channels=16, ocr_key_channels=8, **kw).eval()
    randomise_bn(model, seed + 100, spread=0.1)
    with torch.no_grad():
        for name in ("f_pixel.0", "f_object.0"):       # sharper attention
            model.get_submodule(OCB + name).weight.mul_(4)
    return model


def outputs(model, x):
    out, cache = run_with_cache(model, x)
    return out, cache.sim_map


# ---------------------------------------------------------------- manifests
@pytest.mark.parametrize(("name", "width"), [("mmseg_ocrnet_hr18_cityscapes_state_dict.json", 18),
                                             ("mmseg_ocrnet_hr48_cityscapes_state_dict.json", 48)])
def test_mmseg_manifest_maps_onto_hrnet_ocr_at_its_width(reference_dir, name, width):
    sd = manifest(reference_dir, name)
    assert len(sd) == 1888 and layouts.detect(layouts.strip_wrappers(sd)) == "mmseg"
    mapped = layouts.to_ocrviz(sd, "mmseg")
    geometry = layouts.hrnet_geometry(mapped)
    assert geometry == {"num_classes": 19, "width": width, "ocr_mid_channels": 512,
                        "ocr_key_channels": 256, "aux_kernel_size": 1}
    model = meta_model(**geometry)
    assert shapes(mapped) == shapes(model.state_dict())       # 1888 + the two zero-filled biases = 1890
    assert len(mapped) == 1890


def test_official_manifest_in_every_release_wrapper(reference_dir):
    sd = manifest(reference_dir, "hrnet_w48_ocr_cityscapes_state_dict.json")
    loss = {"loss.criterion.weight": torch.empty(19, device="meta")}
    for wrapped in (sd, {**{f"model.{k}": v for k, v in sd.items()}, **loss},
                    {**{f"module.model.{k}": v for k, v in sd.items()}, **{f"module.{k}": v for k, v in loss.items()}}):
        stripped = layouts.strip_wrappers(wrapped)
        assert layouts.detect(stripped) == "official"
        assert shapes(stripped) == shapes(meta_model(num_classes=19).state_dict())
        assert layouts.hrnet_geometry(stripped)["width"] == 48


def test_openseg_head_manifest_maps_onto_the_hrnet_ocr_head(reference_dir):
    head = manifest(reference_dir, "openseg_ocr_heads_state_dict.json", "hrnet_w48_ocr_head")
    official = manifest(reference_dir, "hrnet_w48_ocr_cityscapes_state_dict.json")
    backbone = {f"backbone.{k}": v for k, v in official.items() if not k.startswith(OCR_PREFIXES)}
    sd = {**backbone, **head}
    assert layouts.detect(sd) == "openseg"
    mapped = layouts.to_ocrviz(sd, "openseg")
    geometry = layouts.hrnet_geometry(mapped)
    assert geometry["aux_kernel_size"] == 3 and geometry["width"] == 48
    assert shapes(mapped) == shapes(meta_model(**geometry).state_dict())     # 7 OCR biases folded away


# ---------------------------------------------------------------- official release files
def official_files(sd: dict[str, torch.Tensor]) -> dict[str, object]:
    loss = {"loss.criterion.weight": torch.rand(5)}
    model_keys = {**{f"model.{k}": v for k, v in sd.items()}, **loss}
    return {
        "raw.pth": sd,
        "hrnet_ocr_cs_release.pth": model_keys,                                       # model. + loss.*
        "checkpoint.pth.tar": {"epoch": 484, "best_mIoU": 0.81, "state_dict": model_keys,
                               "optimizer": {"state": {}, "param_groups": [{"lr": 0.01, "params": [0]}]}},
        "dataparallel.pth": {f"module.{k}": v for k, v in model_keys.items()},         # module.model.* + module.loss.*
    }


@pytest.mark.parametrize("name", list(official_files({})))
def test_official_release_layouts_give_the_same_model(tmp_path, name):
    source = tiny(seed=1)
    torch.save(official_files(source.state_dict())[name], tmp_path / name)
    model = ocrviz.from_checkpoint(tmp_path / name)
    assert (model.training, model.checkpoint_layout, model.align_corners, model.width) == (False, "official", True, 4)
    x = torch.randn(*X_SHAPE)
    for got, want in zip(outputs(model, x), outputs(source, x)):
        assert torch.equal(got, want)
    target = tiny(seed=2)                                                            # load_checkpoint takes it too
    load_checkpoint(target, tmp_path / name)
    assert torch.equal(target(x), source(x))


# ---------------------------------------------------------------- openseg
def to_openseg(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """ocrviz keys -> openseg.pytorch HRNet_W48_OCR keys (backbone., conv3x3, BNReLU pairs, aux 0/1.0/2)."""
    out = {}
    for k, v in sd.items():
        if not k.startswith(OCR_PREFIXES):
            k = f"backbone.{k}"
        for old, new in (("conv3x3_ocr.0.", "conv3x3.0."), ("conv3x3_ocr.1.", "conv3x3.1.0."),
                         ("aux_head.1.", "aux_head.1.0."), ("aux_head.3.", "aux_head.2.")):
            if k.startswith(old):
                k = new + k[len(old):]
        out[k] = v
    return out


def test_openseg_layout_with_conv_biases_is_reproduced(tmp_path):
    reference = tiny(seed=3, aux_kernel_size=3)
    g = torch.Generator().manual_seed(7)
    sd = to_openseg(reference.state_dict())
    convs = ["f_pixel.0", "f_pixel.2", "f_object.0", "f_object.2", "f_down.0", "f_up.0"]
    biased = {OCB + c: reference.get_submodule(OCB + c) for c in convs}
    biased["ocr_distri_head.conv_bn_dropout.0"] = reference.ocr_distri_head.conv_bn_dropout[0]
    x = torch.randn(*X_SHAPE)
    plain = outputs(reference, x)
    handles = []
    for name, conv in biased.items():                  # openseg's forward: conv(x) + bias, then BN
        bias = torch.randn(conv.out_channels, generator=g) * 0.5
        sd[f"{name}.bias"] = bias
        handles.append(conv.register_forward_hook(lambda m, i, o, b=bias: o + b.view(1, -1, 1, 1)))
    want = outputs(reference, x)
    for h in handles:
        h.remove()
    assert not torch.allclose(want[0], plain[0], atol=1e-3)                       # the biases matter
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "openseg.pth")
    model = ocrviz.from_checkpoint(tmp_path / "openseg.pth")
    assert (model.checkpoint_layout, model.model_kwargs["aux_kernel_size"], model.align_corners) == ("openseg", 3, True)
    for got, exp in zip(outputs(model, x), want):
        assert (got - exp).abs().max() <= 1e-5


def test_openseg_inplace_abn_layout_is_refused_with_the_reason(tmp_path):
    sd = {"backbone.transition1.0.0.weight": torch.zeros(4, 256, 3, 3), "conv3x3.0.weight": torch.zeros(8, 60, 3, 3),
          "conv3x3.1.weight": torch.zeros(8), f"{OCB}f_pixel.0.weight": torch.zeros(4, 8, 1, 1),
          f"{OCB}f_pixel.1.weight": torch.zeros(4)}
    torch.save(sd, tmp_path / "abn.pth")
    with pytest.raises(CheckpointFormatError, match="inplace_abn.*leaky ReLU"):
        ocrviz.from_checkpoint(tmp_path / "abn.pth")


# ---------------------------------------------------------------- ocrviz's own files
def test_own_checkpoints_rebuild_the_model(tmp_path):
    source = tiny(seed=4, align_corners=False)
    source.class_names, source.palette = list("abcde"), [(i, i, i) for i in range(5)]
    x = torch.randn(*X_SHAPE)
    model = ocrviz.from_checkpoint(save_checkpoint(source, tmp_path / "h.safetensors"))
    assert (model.align_corners, model.width, model.class_names, model.palette) == (False, 4, list("abcde"), source.palette)
    assert torch.equal(model(x), source(x))
    toy = create_model("ocrnet", num_classes=3, class_names=["a", "b", "c"]).eval()
    again = ocrviz.from_checkpoint(save_checkpoint(toy, tmp_path / "toy.pth"))
    assert again.arch == "ocrnet" and again.class_names == ["a", "b", "c"] and not again.training
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(again(x), toy(x))


# ---------------------------------------------------------------- refusals
def test_unknown_file_names_the_layouts_and_describes_itself(tmp_path):
    sd = {f"encoder.blocks.{i}.weight": torch.zeros(3, 3) for i in range(4)} | {"decoder.proj.bias": torch.zeros(2)}
    torch.save({"state_dict": sd}, tmp_path / "segformer.pth")
    with pytest.raises(CheckpointFormatError) as info:
        ocrviz.from_checkpoint(tmp_path / "segformer.pth")
    text = str(info.value)
    assert "segformer.pth" in text and "not a checkpoint layout ocrviz recognises" in text
    assert "5 entries (38 values)" in text and "'encoder.blocks.0.weight'" in text and "encoder 4, decoder 1" in text
    for layout in ("ocrviz's own", "official HRNet-OCR", "module.model.*", "MMSegmentation OCRNet", "openseg.pytorch"):
        assert layout in text
    assert "ocrviz.load_checkpoint(model, path)" in text


def test_mmseg_variants_ocrviz_cannot_build_are_named(tmp_path, reference_dir):
    sd = manifest(reference_dir, "mmseg_ocrnet_hr18_cityscapes_state_dict.json")
    resnet = {k: torch.zeros(1) for k in sd if k.startswith("decode_head.")} | {"backbone.stem.0.weight": torch.zeros(1)}
    torch.save({"state_dict": resnet}, tmp_path / "ocrnet_r101.pth")
    with pytest.raises(CheckpointFormatError, match="non-HRNet backbone"):
        ocrviz.from_checkpoint(tmp_path / "ocrnet_r101.pth")
    small = {k: torch.zeros(1) for k in sd if not k.startswith("backbone.stage3.3.")}   # 3 stage-3 modules
    small = {k: v for k, v in small.items() if not k.startswith("backbone.stage3.2.")}
    torch.save({"state_dict": small}, tmp_path / "hr18s.pth")
    with pytest.raises(CheckpointFormatError, match=r"mmseg layout.*\(1, 2, 3\) modules.*W18-Small"):
        ocrviz.from_checkpoint(tmp_path / "hr18s.pth")


def test_num_classes_must_match_the_checkpoint(tmp_path):
    torch.save(tiny().state_dict(), tmp_path / "w.pth")
    assert ocrviz.from_checkpoint(tmp_path / "w.pth", num_classes=5).num_classes == 5
    with pytest.raises(CheckpointMismatchError, match="has 5 classes .*not num_classes=19"):
        ocrviz.from_checkpoint(tmp_path / "w.pth", num_classes=19)


# ---------------------------------------------------------------- align_corners as a model option
@pytest.mark.parametrize("align_corners", [True, False])
def test_every_resize_uses_the_models_align_corners(monkeypatch, align_corners):
    model = tiny(align_corners=align_corners)
    seen = []
    real = F.interpolate

    def spy(*args, **kwargs):
        seen.append(kwargs.get("align_corners"))
        return real(*args, **kwargs)
    monkeypatch.setattr(F, "interpolate", spy)
    with torch.no_grad():
        model(torch.randn(*X_SHAPE), return_aux=True)
    fuse = 1 + 4 * 3 + 3 * 6          # upsampling paths: stage2 (2 branches), stage3 (3), stage4 (4)
    assert seen == [align_corners] * (fuse + 3 + 2)     # + stage-4 concat (3) + main and aux logits
    other = tiny(align_corners=not align_corners)
    monkeypatch.setattr(F, "interpolate", real)
    x = torch.randn(*X_SHAPE)
    assert not torch.allclose(model(x), other(x), atol=1e-4)


@pytest.mark.parametrize("name", ["toycity-ocr", "toycity-aspp", "toycity-fcn"])
def test_shipped_models_load_the_same_through_from_checkpoint(name):
    from ocrviz.zoo import data_dir, load_model

    model, shipped = ocrviz.from_checkpoint(data_dir() / "checkpoints" / f"{name}.safetensors"), load_model(name)
    assert (model.class_names, model.palette, model.card, model.training) == (
        shipped.class_names, shipped.palette, shipped.card, False)
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(model(x), shipped(x))


def test_from_checkpoint_reads_torch_files_with_weights_only(tmp_path, monkeypatch):
    torch.save(tiny().state_dict(), tmp_path / "w.pth")
    calls = []
    real = torch.load

    def recording(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real(*args, **kwargs)
    monkeypatch.setattr(torch, "load", recording)
    ocrviz.from_checkpoint(tmp_path / "w.pth")
    assert calls == [True]
