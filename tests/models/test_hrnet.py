"""HRNetW48OCR: official state-dict layout, shapes through the network, input checks."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from ocrviz.models.hrnet import HRNetW48OCR
from ocrviz.models.ocr import OCRHead

OCR_PREFIXES = ("conv3x3_ocr", "ocr_gather_head", "ocr_distri_head", "cls_head", "aux_head")


@pytest.fixture(scope="module")
def manifest(reference_dir) -> dict:
    return json.loads((reference_dir / "hrnet_w48_ocr_cityscapes_state_dict.json").read_text())


@pytest.fixture(scope="module")
def full_model() -> HRNetW48OCR:
    return HRNetW48OCR().eval()  # 70M params, ~0.5 s to build


def small_model(num_classes: int = 5) -> HRNetW48OCR:
    return HRNetW48OCR(num_classes=num_classes, width=8, ocr_mid_channels=32, ocr_key_channels=16).eval()


def _count(model: torch.nn.Module, prefix: str) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if name == prefix or name.startswith(prefix + "."))


def test_state_dict_equals_official_manifest(full_model, manifest):
    ours = [[k, list(v.shape)] for k, v in full_model.state_dict().items()]
    assert len(ours) == manifest["num_state_dict_entries"] == 1890
    assert [k for k, _ in ours] == [k for k, _ in manifest["state_dict"]]   # names and order
    assert ours == manifest["state_dict"]                                   # and shapes


def test_parameter_counts_match_manifest(full_model, manifest):
    total = sum(p.numel() for p in full_model.parameters())
    assert total == manifest["total_params"] == 70_372_678
    ocr = sum(_count(full_model, p) for p in OCR_PREFIXES)
    assert ocr == manifest["ocr_part_params"] == 5_047_558
    assert total - ocr == manifest["backbone_params"]
    for prefix, expected in manifest["params_by_prefix"].items():
        assert _count(full_model, prefix) == expected, prefix


def test_ocr_layers_sit_at_top_level_after_stage4(full_model):
    names = list(full_model._modules)
    with_params = [n for n in names if any(True for _ in full_model._modules[n].parameters())]
    assert with_params[-5:] == ["stage4", "conv3x3_ocr", "ocr_distri_head", "cls_head", "aux_head"]
    order = [n for n in names if n in ("stage4",) + OCR_PREFIXES]
    assert order == ["stage4", *OCR_PREFIXES]
    assert isinstance(full_model, OCRHead)
    assert (full_model.arch, full_model.output_stride, full_model.num_classes) == ("hrnet_w48_ocr", 4, 19)
    assert full_model.class_names is None and full_model.palette is None
    assert full_model.feature_channels == 720


def test_small_width_keeps_official_key_names(manifest):
    model = small_model()
    assert list(model.state_dict()) == [k for k, _ in manifest["state_dict"]]
    assert model.feature_channels == 15 * 8
    assert model.state_dict()["conv3x3_ocr.0.weight"].shape == (32, 120, 3, 3)


def _record(model: torch.nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    seen: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    for name in names:
        modules[name].register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(name, out))
    return seen


def test_full_width_feature_resolution_matches_official_outputs(manifest):
    model = HRNetW48OCR().eval()  # own instance: forward hooks stay off the shared fixture
    seen = _record(model, ["hook_features", "hook_soft_regions", "hook_head_logits", "hook_logits"])
    with torch.no_grad():
        main, aux = model(torch.randn(1, 3, 256, 512), return_aux=True)   # the one full-width forward
    official_aux, official_main = manifest["forward_outputs_for_1x3x256x512"]
    assert list(seen["hook_soft_regions"].shape) == official_aux == [1, 19, 64, 128]
    assert list(seen["hook_head_logits"].shape) == official_main
    assert seen["hook_features"].shape == (1, 720, 64, 128)
    assert main.shape == aux.shape == (1, 19, 256, 512)
    assert seen["hook_logits"] is main
    assert torch.isfinite(main).all()


def test_small_forward_upsamples_with_align_corners_true():
    model = small_model()
    seen = _record(model, ["hook_features", "hook_soft_regions", "hook_head_logits",
                           "ocr_distri_head.object_context_block.hook_sim_map"])
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        main, aux = model(x, return_aux=True)
        plain = model(x)
    assert main.shape == aux.shape == (1, 5, 64, 128)
    assert torch.equal(plain, main)
    head, soft = seen["hook_head_logits"], seen["hook_soft_regions"]
    assert head.shape == soft.shape == (1, 5, 16, 32)                      # stride 4
    assert seen["hook_features"].shape == (1, 120, 16, 32)
    sim = seen["ocr_distri_head.object_context_block.hook_sim_map"]
    assert sim.shape == (1, 16 * 32, 5)
    assert torch.allclose(sim.sum(-1), torch.ones(1, 16 * 32), atol=1e-5)
    # align_corners=True: the corner pixels are the feature-map corners exactly.
    for out, low in ((main, head), (aux, soft)):
        for i, j in ((0, 0), (-1, -1), (0, -1), (-1, 0)):
            assert torch.allclose(out[..., i, j], low[..., i, j], atol=1e-6)
        assert torch.allclose(out, F.interpolate(low, size=(64, 128), mode="bilinear", align_corners=True), atol=1e-6)
        assert not torch.allclose(out, F.interpolate(low, size=(64, 128), mode="bilinear"), atol=1e-3)


def test_ocr_part_is_the_shared_ocr_head():
    model = small_model()
    head = OCRHead(in_channels=120, num_classes=5, mid_channels=32, key_channels=16).eval()
    own = {k: v for k, v in model.state_dict().items() if k.startswith(OCR_PREFIXES)}
    head.load_state_dict(own)                                               # same keys, nothing left over
    feats = torch.randn(2, 120, 8, 12)
    with torch.no_grad():
        for ours, ref in zip(model.forward_ocr(feats), head(feats)):
            assert torch.equal(ours, ref)


def test_sizes_that_are_not_powers_of_two_and_a_batch():
    model = small_model(num_classes=3)
    with torch.no_grad():
        out = model(torch.randn(2, 3, 36, 52))       # branches at 9x13, 5x7, 3x4, 2x2
    assert out.shape == (2, 3, 36, 52)


def test_every_parameter_gets_a_gradient():
    model = small_model().train()
    main, aux = model(torch.randn(2, 3, 32, 32), return_aux=True)
    target = torch.randint(0, 5, (2, 32, 32))
    (F.cross_entropy(main, target) + 0.4 * F.cross_entropy(aux, target)).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []


@pytest.mark.parametrize(("x", "error", "words"), [
    (torch.zeros(3, 64, 64), ValueError, "unsqueeze(0)"),
    (torch.zeros(1, 64, 64, 3), ValueError, "permute"),
    (torch.zeros(1, 1, 64, 64), ValueError, "expected 3 channels"),
    (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), TypeError, "floating-point"),
    (torch.zeros(1, 3, 3, 64), ValueError, "output stride 4"),
    (torch.zeros(0, 3, 64, 64), ValueError, "empty batch"),
    ([[0.0]], TypeError, "torch.Tensor"),
    (torch.zeros(1, 3, 37, 64), ValueError, "multiple of the output stride 4"),
    (torch.full((1, 3, 64, 64), float("nan")), ValueError, "NaN"),
])
def test_bad_inputs_are_rejected_with_a_fix(x, error, words):
    with pytest.raises(error) as info:
        small_model()(x)
    assert words in str(info.value)
