"""create_model and SegModel: building, shapes, hook points, input errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ocrviz.models import MODELS, ASPPHead, DilatedResNet, FCNHead, OCRHead, create_model

TOY = ("ocrnet", "aspp", "fcn")


def _grab(module: torch.nn.Module, store: dict, key: str):
    """Forward hook that stores the output and returns None (a non-None return would replace it)."""
    def hook(m, i, o):
        store[key] = o
    return module.register_forward_hook(hook)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {name: create_model(name, num_classes=5).eval() for name in TOY}


def test_registry_names():
    assert list(MODELS) == ["ocrnet", "aspp", "fcn", "sa", "psp", "da", "cc", "hrnet_w48_ocr"]


@pytest.mark.parametrize("name", TOY)
def test_builds_and_runs_at_input_resolution(models, name):
    model = models[name]
    assert model.arch == name and model.num_classes == 5 and model.output_stride == 8
    assert isinstance(model.backbone, DilatedResNet)
    assert isinstance(model.head, {"ocrnet": OCRHead, "aspp": ASPPHead, "fcn": FCNHead}[name])
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
    feats = {}
    handle = _grab(model.hook_features, feats, "f")
    try:
        with torch.no_grad():
            out = model(torch.randn(2, 3, 64, 128))
    finally:
        handle.remove()
    assert out.shape == (2, 5, 64, 128)
    assert torch.isfinite(out).all()
    assert feats["f"].shape == (2, model.backbone.out_channels, 8, 16)


@pytest.mark.parametrize("name", TOY)
def test_return_aux(models, name):
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        main, aux = models[name](x, return_aux=True)
        plain = models[name](x)
    assert main.shape == (1, 5, 64, 128)
    torch.testing.assert_close(main, plain)
    if name == "ocrnet":
        assert aux.shape == (1, 5, 64, 128)
        assert not torch.allclose(aux, main)
    else:
        assert aux is None


def test_logits_are_the_head_output_upsampled_align_corners(models):
    model = models["ocrnet"]
    seen = {}
    handle = _grab(model.head.hook_head_logits, seen, "small")
    try:
        with torch.no_grad():
            out = model(torch.randn(1, 3, 32, 64))
    finally:
        handle.remove()
    small = seen["small"]                                               # 1 x K x 4 x 8
    assert small.shape == (1, 5, 4, 8)
    # align_corners=True: the corner pixels equal the corner cells exactly.
    torch.testing.assert_close(out[..., 0, 0], small[..., 0, 0])
    torch.testing.assert_close(out[..., -1, -1], small[..., -1, -1])
    torch.testing.assert_close(out, torch.nn.functional.interpolate(small, size=(32, 64), mode="bilinear",
                                                                    align_corners=True))


def test_output_stride_4(models):
    model = create_model("aspp", num_classes=3, output_stride=4).eval()
    assert model.output_stride == 4 and model.head.rates == (12, 24, 36)
    assert models["aspp"].head.rates == (6, 12, 18)
    feats = {}
    _grab(model.hook_features, feats, "f")
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 64)).shape == (1, 3, 32, 64)
    assert feats["f"].shape[-2:] == (8, 16)


def test_bad_output_stride():
    with pytest.raises(ValueError, match=r"output_stride=16 .*\(4, 8\)"):
        DilatedResNet(output_stride=16)
    with pytest.raises(ValueError, match="output_stride=16"):
        create_model("fcn", output_stride=16)
    with pytest.raises(ValueError, match="fixed output stride of 4"):
        create_model("hrnet_w48_ocr", output_stride=8)
    with pytest.raises(ValueError, match="four positive channel counts"):
        DilatedResNet(widths=(16, 32, 64))


def test_eval_mode_is_deterministic(models):
    x = torch.randn(2, 3, 64, 128)
    for model in models.values():
        with torch.no_grad():
            torch.testing.assert_close(model(x), model(x), atol=0, rtol=0)


def test_train_mode_dropout_changes_outputs():
    model = create_model("ocrnet", num_classes=5, dropout=0.5).train()
    x = torch.randn(2, 3, 32, 64)
    with torch.no_grad():
        assert not torch.allclose(model(x), model(x))


def test_unknown_model_name_lists_valid_names():
    with pytest.raises(ValueError) as err:
        create_model("ocrnett")
    msg = str(err.value)
    for name in MODELS:
        assert name in msg
    assert "did you mean 'ocrnet'" in msg


def test_pretrained_is_refused_with_a_pointer():
    with pytest.raises(ValueError, match="load_model"):
        create_model("ocrnet", pretrained=True)


def test_class_names_and_palette():
    names, palette = ["a", "b", "c"], [(0, 0, 0), (255, 0, 0), (0, 255, 0)]
    model = create_model("fcn", num_classes=3, class_names=names, palette=palette)
    assert model.class_names == names and model.palette == palette
    assert create_model("fcn", num_classes=3).class_names is None
    with pytest.raises(ValueError, match="2 class names .* num_classes=3"):
        model.class_names = ["a", "b"]
    with pytest.raises(ValueError, match="RGB"):
        model.palette = [(0, 0, 0), (256, 0, 0), (0, 0, 0)]


# --- input validation ------------------------------------------------------------------------

def _err(model, x):
    with pytest.raises((TypeError, ValueError)) as err:
        model(x)
    return err.value


def test_rejects_non_tensor(models):
    e = _err(models["fcn"], np.zeros((1, 3, 64, 64), dtype=np.float32))
    assert isinstance(e, TypeError) and "torch.Tensor" in str(e) and "ndarray" in str(e)


def test_rejects_missing_batch_dim(models):
    e = _err(models["fcn"], torch.zeros(3, 64, 64))
    assert isinstance(e, ValueError)
    assert "(3, 64, 64)" in str(e) and "x.unsqueeze(0)" in str(e)


def test_rejects_wrong_channels(models):
    e = _err(models["fcn"], torch.zeros(1, 1, 64, 64))
    assert "3" in str(e) and "(1, 1, 64, 64)" in str(e)
    e = _err(models["fcn"], torch.zeros(1, 64, 64, 3))
    assert "permute(0, 3, 1, 2)" in str(e)


def test_rejects_integer_images(models):
    e = _err(models["fcn"], torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    assert isinstance(e, TypeError) and "uint8" in str(e) and "x.float() / 255" in str(e)


def test_rejects_nan_and_inf(models):
    x = torch.zeros(1, 3, 64, 64)
    x[0, 1, 2, 3] = float("nan")
    x[0, 0, 5, 5] = float("inf")
    e = _err(models["fcn"], x)
    assert isinstance(e, ValueError)
    assert "1 NaN" in str(e) and "1 infinite" in str(e) and "(0, 0, 5, 5)" in str(e)


def test_rejects_image_smaller_than_stride(models):
    e = _err(models["fcn"], torch.zeros(1, 3, 4, 64))
    assert isinstance(e, ValueError) and "4 x 64" in str(e) and "8" in str(e)


def test_rejects_size_not_multiple_of_stride(models):
    e = _err(models["fcn"], torch.zeros(1, 3, 250, 250))
    assert isinstance(e, ValueError)
    assert "input 250x250 is not a multiple of the output stride 8" in str(e)
    assert "pad to 256x256" in str(e) and "pad_to_stride" in str(e)
    assert "pad to 72x64" in str(_err(models["fcn"], torch.zeros(1, 3, 65, 64)))


def test_valid_input_passes_through_every_model(models):
    """The smallest valid input (one feature cell per stride) in float64 passes every check."""
    x = torch.rand(1, 3, 8, 16, dtype=torch.float64)
    for name in TOY:
        model = create_model(name, num_classes=5).double().eval()
        with torch.no_grad():
            assert model(x).shape == (1, 5, 8, 16)


# --- backbone and ASPP specifics ---------------------------------------------------------------

@pytest.mark.parametrize("stride", [8, 4])
def test_backbone_receptive_field_is_191_px_centred_on_the_cell(stride):
    """Dilation instead of stride keeps the receptive field (191 px) at both output strides."""
    net = DilatedResNet(output_stride=stride).eval()
    assert net.out_channels == 128 and net.output_stride == stride
    x = torch.randn(1, 3, 256, 256, requires_grad=True)
    feats = net(x)
    assert feats.shape == (1, 128, 256 // stride, 256 // stride)
    i = feats.shape[-1] // 2
    feats[0, :, i, i].sum().backward()
    support = x.grad.abs().sum((0, 1)) > 0
    rows = support.any(1).nonzero().flatten()
    cols = support.any(0).nonzero().flatten()
    assert (rows.min().item(), rows.max().item()) == (i * stride - 95, i * stride + 95)
    assert (cols.min().item(), cols.max().item()) == (i * stride - 95, i * stride + 95)


def test_aspp_branch_shares_add_up_to_the_projection():
    """sum_b W_b @ branch_b(p) is the projection pre-activation; BN + ReLU of it is hook_project."""
    model = create_model("aspp", num_classes=4, channels=16).eval()
    head = model.head
    assert head.branch_names == ("branch0", "branch1", "branch2", "branch3", "pool")
    seen = {}
    handles = [_grab(getattr(head, f"hook_{n}"), seen, n) for n in head.branch_names + ("project",)]
    try:
        with torch.no_grad():
            model(torch.randn(2, 3, 64, 128))
    finally:
        for h in handles:
            h.remove()
    weights = head.projection_weights()
    assert list(weights) == list(head.branch_names)
    assert all(w.shape == (16, 16) for w in weights.values())
    assert weights["branch2"].data_ptr() == head.project[0].weight[:, 32:48].data_ptr()
    shares = {n: torch.einsum("oc,bchw->bohw", weights[n], seen[n]) for n in head.branch_names}
    pre = sum(shares.values())
    with torch.no_grad():
        torch.testing.assert_close(head.project[2](head.project[1](pre)), seen["project"], atol=1e-5, rtol=1e-4)
    pool = seen["pool"]
    assert (pool == pool[..., :1, :1]).all(), "the pooling branch must be one vector per image"
    assert not torch.allclose(seen["branch1"], seen["branch3"])


def test_aspp_rates_validation():
    with pytest.raises(ValueError, match="three positive integer"):
        ASPPHead(8, 3, rates=(6, 12))
    with pytest.raises(ValueError, match="three positive integer"):
        ASPPHead(8, 3, rates=(6, 0, 18))
    assert ASPPHead(8, 3, rates=[np.int64(2), 4, 6]).rates == (2, 4, 6)
