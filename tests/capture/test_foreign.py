"""Capture on OCR module trees ocrviz did not write (official HRNet-OCR, openseg, MMSeg).

The trees are rebuilt here from their public structure (class names, attribute
names, the forward math of docs in shared/design/ocr-facts.md); no upstream
code.  Every captured similarity map is checked against an independent float64
computation (einsum from the state dict), and tampered trees must raise.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from capture_helpers import hooks_left
from ocrviz.capture import CaptureMismatchError, capture, find_foreign, run_with_cache
from ocrviz.models.ocr import SpatialGather, SpatialOCR

B, C_IN, C, CK, K, H, W = 2, 12, 16, 8, 5, 6, 7


# -- official HRNet-OCR / openseg layout --------------------------------------------------
def bn_relu(c: int) -> nn.Sequential:            # ModuleHelper.BNReLU: nested pair -> keys ".1.0."
    return nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())


class SpatialGather_Module(nn.Module):
    def __init__(self, cls_num: int = 0, scale: float = 1) -> None:
        super().__init__()
        self.cls_num, self.scale = cls_num, scale
        self.softmax_dim = 2                      # tamper knob: 1 = softmax over classes (wrong)

    def forward(self, feats, probs):
        b, k = probs.shape[:2]
        probs = F.softmax(self.scale * probs.view(b, k, -1), dim=self.softmax_dim)   # B x K x HW
        feats = feats.view(b, feats.shape[1], -1).permute(0, 2, 1)                   # B x HW x C
        return torch.matmul(probs, feats).permute(0, 2, 1).unsqueeze(3)              # B x C x K x 1


class _ObjectAttentionBlock(nn.Module):
    def __init__(self, in_channels, key_channels, scale=1, bias=False, fetch_attention=False):
        super().__init__()
        self.scale, self.in_channels, self.key_channels = scale, in_channels, key_channels
        self.fetch_attention = fetch_attention
        self.softmax_dim = -1                     # tamper knob
        self.pool = nn.MaxPool2d(kernel_size=(scale, scale))
        conv = lambda i, o: nn.Conv2d(i, o, 1, bias=bias)  # noqa: E731
        self.f_pixel = nn.Sequential(conv(in_channels, key_channels), bn_relu(key_channels),
                                     conv(key_channels, key_channels), bn_relu(key_channels))
        self.f_object = nn.Sequential(conv(in_channels, key_channels), bn_relu(key_channels),
                                      conv(key_channels, key_channels), bn_relu(key_channels))
        self.f_down = nn.Sequential(conv(in_channels, key_channels), bn_relu(key_channels))
        self.f_up = nn.Sequential(conv(key_channels, in_channels), bn_relu(in_channels))

    def forward(self, x, proxy):
        b, h, w = x.size(0), x.size(2), x.size(3)
        if self.scale > 1:
            x = self.pool(x)
        query = self.f_pixel(x).view(b, self.key_channels, -1).permute(0, 2, 1)
        key = self.f_object(proxy).view(b, self.key_channels, -1)
        value = self.f_down(proxy).view(b, self.key_channels, -1).permute(0, 2, 1)
        sim_map = F.softmax((self.key_channels ** -.5) * torch.matmul(query, key), dim=self.softmax_dim)
        context = torch.matmul(sim_map, value).permute(0, 2, 1).contiguous()
        context = self.f_up(context.view(b, self.key_channels, *x.size()[2:]))
        if self.scale > 1:
            context = F.interpolate(context, size=(h, w), mode="bilinear", align_corners=True)
        return (context, sim_map) if self.fetch_attention else context


class ObjectAttentionBlock2D(_ObjectAttentionBlock):
    pass


class SpatialOCR_Module(nn.Module):
    def __init__(self, in_channels, key_channels, out_channels, scale=1, dropout=0.1, bias=False,
                 fetch_attention=False):
        super().__init__()
        self.fetch_attention = fetch_attention
        self.object_context_block = ObjectAttentionBlock2D(in_channels, key_channels, scale, bias, fetch_attention)
        self.conv_bn_dropout = nn.Sequential(nn.Conv2d(2 * in_channels, out_channels, 1, bias=bias),
                                             bn_relu(out_channels), nn.Dropout2d(dropout))

    def forward(self, feats, proxy_feats):
        context = self.object_context_block(feats, proxy_feats)
        if self.fetch_attention:
            context, sim_map = context
            return self.conv_bn_dropout(torch.cat([context, feats], 1)), sim_map
        return self.conv_bn_dropout(torch.cat([context, feats], 1))


class HRNetOCRHead(nn.Module):
    """The OCR part of HighResolutionNet (HRNet-OCR branch), on a stand-in feature map."""

    def __init__(self, in_channels=C_IN, num_classes=K, mid=C, key=CK, scale=1):
        super().__init__()
        self.conv3x3_ocr = nn.Sequential(nn.Conv2d(in_channels, mid, 3, padding=1), nn.BatchNorm2d(mid), nn.ReLU())
        self.ocr_gather_head = SpatialGather_Module(num_classes)
        self.ocr_distri_head = SpatialOCR_Module(mid, key, mid, scale=scale, dropout=0.05)
        self.cls_head = nn.Conv2d(mid, num_classes, 1)
        self.aux_head = nn.Sequential(nn.Conv2d(in_channels, in_channels, 1), nn.BatchNorm2d(in_channels), nn.ReLU(),
                                      nn.Conv2d(in_channels, num_classes, 1))

    def forward(self, x):
        out_aux = self.aux_head(x)
        feats = self.conv3x3_ocr(x)
        context = self.ocr_gather_head(feats, out_aux)
        feats = self.ocr_distri_head(feats, context)
        return [out_aux, self.cls_head(feats)]


class OpensegOCRNet(nn.Module):
    """openseg's SpatialOCRNet head: conv biases inside the OCR block, fetch_attention on."""

    def __init__(self):
        super().__init__()
        self.conv_3x3 = nn.Sequential(nn.Conv2d(C_IN, C, 3, padding=1), bn_relu(C))
        self.spatial_context_head = SpatialGather_Module(K)
        self.spatial_ocr_head = SpatialOCR_Module(C, CK, C, dropout=0.05, bias=True, fetch_attention=True)
        self.head = nn.Conv2d(C, K, 1)
        self.dsn_head = nn.Sequential(nn.Conv2d(C_IN, C, 3, padding=1), bn_relu(C), nn.Conv2d(C, K, 1))

    def forward(self, x):
        x_dsn = self.dsn_head(x)
        feats = self.conv_3x3(x)
        context = self.spatial_context_head(feats, x_dsn)
        feats, _ = self.spatial_ocr_head(feats, context)
        return x_dsn, self.head(feats)


# -- MMSegmentation layout -----------------------------------------------------------------
class ConvModule(nn.Module):                      # mmcv: conv (no bias with norm) -> bn -> activate
    def __init__(self, cin, cout, k=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.activate = nn.ReLU()

    def forward(self, x):
        return self.activate(self.bn(self.conv(x)))


class SpatialGatherModule(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, feats, probs):
        b, k = probs.shape[:2]
        probs = F.softmax(self.scale * probs.view(b, k, -1), dim=2)                      # B x K x HW
        ocr_context = torch.matmul(probs, feats.view(b, feats.shape[1], -1).permute(0, 2, 1))  # B x K x C
        return ocr_context.permute(0, 2, 1).contiguous().unsqueeze(3)                      # B x C x K x 1


class SelfAttentionBlock(nn.Module):
    def __init__(self, in_channels, channels, matmul_norm=True):
        super().__init__()
        self.key_in_channels = self.query_in_channels = self.out_channels = in_channels
        self.channels, self.matmul_norm, self.share_key_query = channels, matmul_norm, False
        self.key_project = nn.Sequential(ConvModule(in_channels, channels), ConvModule(channels, channels))
        self.query_project = nn.Sequential(ConvModule(in_channels, channels), ConvModule(channels, channels))
        self.value_project = ConvModule(in_channels, channels)
        self.out_project = ConvModule(channels, in_channels)
        self.query_downsample = None
        self.key_downsample = None

    def forward(self, query_feats, key_feats):
        b = query_feats.size(0)
        query = self.query_project(query_feats)
        query = query.reshape(*query.shape[:2], -1).permute(0, 2, 1)
        key = self.key_project(key_feats)
        value = self.value_project(key_feats)
        key = key.reshape(*key.shape[:2], -1)
        value = value.reshape(*value.shape[:2], -1).permute(0, 2, 1)
        sim_map = torch.matmul(query, key)
        if self.matmul_norm:
            sim_map = (self.channels ** -.5) * sim_map
        sim_map = F.softmax(sim_map, dim=-1)
        context = torch.matmul(sim_map, value).permute(0, 2, 1).contiguous()
        context = context.reshape(b, -1, *query_feats.shape[2:])
        return self.out_project(context)


class ObjectAttentionBlock(SelfAttentionBlock):
    def __init__(self, in_channels, channels, matmul_norm=True):
        super().__init__(in_channels, channels, matmul_norm)
        self.bottleneck = ConvModule(in_channels * 2, in_channels, 1)

    def forward(self, query_feats, key_feats):
        context = super().forward(query_feats, key_feats)
        return self.bottleneck(torch.cat([context, query_feats], dim=1))


class MMSegOCRHead(nn.Module):
    def __init__(self, matmul_norm=True):
        super().__init__()
        self.bottleneck = ConvModule(C_IN, C, 3, padding=1)
        self.spatial_gather_module = SpatialGatherModule(1)
        self.object_context_block = ObjectAttentionBlock(C, CK, matmul_norm)
        self.conv_seg = nn.Conv2d(C, K, 1)

    def forward(self, inputs, prev_output):
        feats = self.bottleneck(inputs)
        context = self.spatial_gather_module(feats, prev_output)
        return self.conv_seg(self.object_context_block(feats, context))


class MMSegEncoderDecoder(nn.Module):
    """decode_head = [FCN aux head (gives prev_output), OCRHead] as in a cascade decoder."""

    def __init__(self, matmul_norm=True):
        super().__init__()
        self.decode_head = nn.ModuleList([
            nn.Sequential(ConvModule(C_IN, C_IN, 3, padding=1), nn.Conv2d(C_IN, K, 1)),
            MMSegOCRHead(matmul_norm)])

    def forward(self, x):
        return self.decode_head[1](x, self.decode_head[0](x))


# -- random weights that make attention far from uniform ------------------------------------
def randomise_(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0, 0.1, generator=g)
                m.running_mean.normal_(0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
            elif isinstance(m, nn.Conv2d):
                m.weight.normal_(0, 1.0 / m.weight[0].numel() ** 0.5, generator=g)
                if any(s in name for s in ("f_pixel", "f_object", "query_project", "key_project", "aux_head",
                                           "dsn_head", "decode_head.0")):
                    m.weight.mul_(4)
                if m.bias is not None:
                    m.bias.normal_(0, 0.1, generator=g)
    return model.eval()


# -- the independent float64 reference --------------------------------------------------------
def conv1x1(x, sd, key):
    y = torch.einsum("oc,bchw->bohw", sd[key + ".weight"][:, :, 0, 0], x)
    return y + sd[key + ".bias"][None, :, None, None] if key + ".bias" in sd else y


def bn(x, sd, key):
    p = {n: sd[f"{key}.{n}"][None, :, None, None] for n in ("weight", "bias", "running_mean", "running_var")}
    return (x - p["running_mean"]) / torch.sqrt(p["running_var"] + 1e-5) * p["weight"] + p["bias"]


def chain(x, sd, steps):
    for conv_key, bn_key in steps:
        x = torch.relu(bn(conv1x1(x, sd, conv_key), sd, bn_key))
    return x


OFFICIAL_STEPS = {"q": [("f_pixel.0", "f_pixel.1.0"), ("f_pixel.2", "f_pixel.3.0")],
                  "k": [("f_object.0", "f_object.1.0"), ("f_object.2", "f_object.3.0")],
                  "v": [("f_down.0", "f_down.1.0")], "up": [("f_up.0", "f_up.1.0")]}
MMSEG_STEPS = {"q": [("query_project.0.conv", "query_project.0.bn"), ("query_project.1.conv", "query_project.1.bn")],
               "k": [("key_project.0.conv", "key_project.0.bn"), ("key_project.1.conv", "key_project.1.bn")],
               "v": [("value_project.conv", "value_project.bn")], "up": [("out_project.conv", "out_project.bn")]}


def reference(block: nn.Module, steps: dict, feats, logits, norm_channels: int | None) -> dict:
    """Gather + object attention in float64 from the inputs and the block's state dict."""
    sd = {k: v.double() for k, v in block.state_dict().items() if v.is_floating_point()}
    x, p = feats.double(), logits.double()
    b, k, h, w = p.shape
    weights = torch.softmax(p.reshape(b, k, h * w), dim=2)
    proxies = torch.einsum("bkn,bcn->bck", weights, x.reshape(b, -1, h * w))
    q = chain(x, sd, steps["q"]).reshape(b, -1, h * w)
    key = chain(proxies[..., None], sd, steps["k"])[..., 0]
    value = chain(proxies[..., None], sd, steps["v"])[..., 0]
    logits_qk = torch.einsum("bcn,bck->bnk", q, key) * (1.0 if norm_channels is None else norm_channels ** -0.5)
    sim = torch.softmax(logits_qk, dim=-1)
    context = torch.einsum("bnk,bck->bcn", sim, value).reshape(b, -1, h, w)
    return {"region_weights": weights.reshape(b, k, h, w), "proxies": proxies, "sim_map": sim, "context": context,
            "object_context": chain(context, sd, steps["up"])}


def check_against(cache, ref: dict, prefix_gather: str, prefix_block: str) -> None:
    for role in ("region_weights", "proxies"):
        torch.testing.assert_close(cache[f"{prefix_gather}.{role}"].double(), ref[role], rtol=1e-4, atol=1e-5)
    for role in ("sim_map", "context", "object_context"):
        torch.testing.assert_close(cache[f"{prefix_block}.{role}"].double(), ref[role], rtol=1e-4, atol=1e-5)
    sim = cache.sim_map
    assert sim.max() > 0.9 and sim.min() < 0.01, "weights too tame: the test would not see a wrong softmax axis"


def inputs(seed: int = 1) -> torch.Tensor:
    return torch.randn(B, C_IN, H, W, generator=torch.Generator().manual_seed(seed))


# -- detection --------------------------------------------------------------------------------
def test_detection_rules() -> None:
    kinds = lambda m: [(s.path, s.kind) for s in find_foreign(m)]  # noqa: E731
    assert kinds(HRNetOCRHead()) == [("ocr_gather_head", "gather"), ("ocr_distri_head", "ocr_module"),
                                     ("ocr_distri_head.object_context_block", "official_block")]
    assert kinds(OpensegOCRNet()) == [("spatial_context_head", "gather"), ("spatial_ocr_head", "ocr_module"),
                                      ("spatial_ocr_head.object_context_block", "official_block")]
    assert kinds(MMSegEncoderDecoder()) == [("decode_head.1.spatial_gather_module", "gather"),
                                            ("decode_head.1.object_context_block", "mmseg_block")]
    # ocrviz's own modules hold HookPoints: left to them unless asked.
    ours = nn.ModuleDict({"g": SpatialGather(K), "o": SpatialOCR(C, CK, C)})
    assert kinds(ours) == []
    assert [k for _, k in [(s.path, s.kind) for s in find_foreign(ours, skip_hooked=False)]] == [
        "gather", "ocr_module", "official_block"]


# -- official HRNet-OCR -------------------------------------------------------------------------
def test_official_hrnet_ocr_tree_matches_float64_reference() -> None:
    model = randomise_(HRNetOCRHead())
    x = inputs()
    with torch.no_grad():
        aux, main = model(x)
    out, cache = run_with_cache(model, x)
    blk = "ocr_distri_head.object_context_block"
    assert cache.names() == [f"ocr_gather_head.{r}" for r in ("soft_regions", "pixel_feats", "region_weights",
                                                              "proxies")] + \
        [f"{blk}.{r}" for r in ("query", "key", "value", "sim_map", "context", "object_context")] + \
        ["ocr_distri_head.augmented"]
    torch.testing.assert_close(cache.soft_regions, aux, rtol=0, atol=0)
    ref = reference(model.ocr_distri_head.object_context_block, OFFICIAL_STEPS, cache.pixel_feats,
                    cache.soft_regions, norm_channels=CK)
    check_against(cache, ref, "ocr_gather_head", blk)
    torch.testing.assert_close(model.cls_head(cache.augmented), main, rtol=0, atol=0)
    assert cache.feature_size == (H, W) and cache.sim_map_grid().shape == (B, K, H, W)
    assert cache.sim_map.shape == (B, H * W, K) and cache.proxies.shape == (B, C, K)
    with pytest.raises(KeyError, match="no 'logits' hook"):
        cache.logits


def test_openseg_tree_with_biases_and_fetch_attention() -> None:
    model = randomise_(OpensegOCRNet(), seed=3)
    assert "spatial_ocr_head.object_context_block.f_pixel.0.bias" in model.state_dict()
    _, cache = run_with_cache(model, inputs(4))
    ref = reference(model.spatial_ocr_head.object_context_block, OFFICIAL_STEPS, cache.pixel_feats,
                    cache.soft_regions, norm_channels=CK)
    check_against(cache, ref, "spatial_context_head", "spatial_ocr_head.object_context_block")
    assert cache.augmented.shape == (B, C, H, W)


@pytest.mark.parametrize("matmul_norm", [True, False])
def test_mmseg_tree_uses_channels_scaling(matmul_norm: bool) -> None:
    model = randomise_(MMSegEncoderDecoder(matmul_norm), seed=5)
    x = inputs(6)
    with torch.no_grad():
        expected = model(x)
    out, cache = run_with_cache(model, x)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    ocb = model.decode_head[1].object_context_block
    ref = reference(ocb, MMSEG_STEPS, cache.pixel_feats, cache.soft_regions, CK if matmul_norm else None)
    check_against(cache, ref, "decode_head.1.spatial_gather_module", "decode_head.1.object_context_block")
    sd = {k: v.double() for k, v in ocb.state_dict().items() if v.is_floating_point()}
    augmented = chain(torch.cat([ref["object_context"], cache.pixel_feats.double()], 1), sd,
                      [("bottleneck.conv", "bottleneck.bn")])
    torch.testing.assert_close(cache.augmented.double(), augmented, rtol=1e-4, atol=1e-5)
    assert cache.names()[-1] == "decode_head.1.object_context_block.augmented"


def test_names_filter_on_foreign_tree() -> None:
    model = randomise_(HRNetOCRHead())
    _, cache = run_with_cache(model, inputs(), names=["sim_map", "region_weights"])
    assert cache.names() == ["ocr_gather_head.region_weights", "ocr_distri_head.object_context_block.sim_map"]
    with pytest.raises(ValueError, match="ocr_distri_head.object_context_block.sim_map"):
        run_with_cache(model, inputs(), names=["hook_sim_map"])


# -- tampering must raise -------------------------------------------------------------------------
def _tamper_forward(monkeypatch, module: nn.Module, delta: float = 0.1) -> None:
    original = module.forward
    monkeypatch.setattr(module, "forward", lambda *a, **k: original(*a, **k) + delta)


@pytest.mark.parametrize("tree, block_path", [
    (HRNetOCRHead, "ocr_distri_head.object_context_block"),
    (MMSegEncoderDecoder, "decode_head.1.object_context_block"),
])
def test_tampered_block_output_raises(monkeypatch, tree, block_path) -> None:
    model = randomise_(tree())
    _tamper_forward(monkeypatch, model.get_submodule(block_path))
    with pytest.raises(CaptureMismatchError) as err:
        run_with_cache(model, inputs())
    assert err.value.path == block_path and block_path in str(err.value)
    assert err.value.max_abs_diff == pytest.approx(0.1, rel=1e-3)
    assert "max abs diff 0.1" in str(err.value)
    assert hooks_left(model) == []


def test_wrong_softmax_axis_in_block_raises() -> None:
    model = randomise_(HRNetOCRHead())
    model.ocr_distri_head.object_context_block.softmax_dim = 1     # softmax over pixels, not regions
    with pytest.raises(CaptureMismatchError, match="context .*input of f_up"):
        run_with_cache(model, inputs())


def test_gather_softmax_over_classes_raises() -> None:
    model = randomise_(HRNetOCRHead())
    model.ocr_gather_head.softmax_dim = 1                             # the unmerged upstream PR
    with pytest.raises(CaptureMismatchError, match="ocr_gather_head: recomputed proxies"):
        run_with_cache(model, inputs())


def test_unsupported_pooled_block_is_refused_up_front() -> None:
    model = randomise_(HRNetOCRHead(scale=2))
    with pytest.raises(ValueError, match="scale=2"):
        run_with_cache(model, inputs())
    assert hooks_left(model) == []
    _, cache = run_with_cache(model, inputs(), names=["region_weights"])   # the gather alone is fine
    assert cache.names() == ["ocr_gather_head.region_weights"]


# -- no side effects, gradients -------------------------------------------------------------------
def test_train_mode_capture_leaves_bn_statistics_as_a_plain_forward() -> None:
    model = randomise_(HRNetOCRHead()).train()
    twin = randomise_(HRNetOCRHead()).train()
    x = inputs()
    torch.manual_seed(0)
    model(x)
    torch.manual_seed(0)
    with capture(twin) as cache:
        twin(x)
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert "ocr_distri_head.object_context_block.sim_map" in cache


def test_foreign_detach_false_lets_gradients_reach_f_pixel() -> None:
    model = randomise_(HRNetOCRHead())
    x = inputs()
    _, cache = run_with_cache(model, x, detach=False)
    assert cache.sim_map.grad_fn is not None
    cache.sim_map[:, :, 0].sum().backward()
    grad = model.ocr_distri_head.object_context_block.f_pixel[0].weight.grad
    assert grad is not None and grad.abs().sum() > 0
    _, detached = run_with_cache(model, x)
    assert detached.sim_map.grad_fn is None


# -- golden data (shared/reference/ocr_module_golden.npz, part A) --------------------------------
class GatherThenOCR(nn.Module):
    def __init__(self, gather: nn.Module, ocr: nn.Module) -> None:
        super().__init__()
        self.gather, self.ocr = gather, ocr

    def forward(self, feats, probs):
        return self.ocr(feats, self.gather(feats, probs))


@pytest.fixture(scope="module")
def golden(reference_dir):
    z = np.load(reference_dir / "ocr_module_golden.npz")
    t = {k: torch.from_numpy(z[k]) for k in z.files if k.startswith("A_")}
    sd = {k[len("A_sd."):]: v for k, v in t.items() if k.startswith("A_sd.")}
    return t, sd


def _check_golden(cache, t) -> None:
    torch.testing.assert_close(cache.sim_map, t["A_sim_map"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(cache.region_weights.flatten(2), t["A_region_softmax"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(cache.proxies, t["A_proxy"][..., 0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(cache.query, t["A_query"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(cache.context, t["A_context_pre_fup"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(cache.object_context, t["A_object_context"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(cache.augmented, t["A_output"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("foreign", [None, True])
def test_ocrviz_spatial_ocr_with_golden_weights(golden, foreign) -> None:
    t, sd = golden
    model = GatherThenOCR(SpatialGather(5), SpatialOCR(64, 32, 64))
    model.ocr.load_state_dict(sd)
    _, cache = run_with_cache(model.eval(), t["A_in_feats"], probs=t["A_in_region_logits"], foreign=foreign)
    assert cache.names()[0] == ("gather.hook_region_weights" if foreign is None else "gather.soft_regions")
    _check_golden(cache, t)


def test_official_layout_foreign_tree_with_golden_weights(golden) -> None:
    t, sd = golden
    model = GatherThenOCR(SpatialGather_Module(5), SpatialOCR_Module(64, 32, 64, dropout=0.05))
    model.ocr.load_state_dict(sd)                                      # strict: the layouts agree
    _, cache = run_with_cache(model.eval(), t["A_in_feats"], probs=t["A_in_region_logits"])
    assert "ocr.object_context_block.sim_map" in cache.names()
    _check_golden(cache, t)


@pytest.mark.parametrize("attr", ["f_up", "f_down"])
def test_block_with_a_non_module_projection_is_refused_and_leaves_no_hook(attr) -> None:
    """M2: a block whose f_up / f_down is a plain function used to keep 4 hooks per call."""
    model = randomise_(HRNetOCRHead())
    block = model.ocr_distri_head.object_context_block
    inner = getattr(block, attr)
    block._modules.pop(attr)
    object.__setattr__(block, attr, lambda t: inner(t))     # same arithmetic, but not an nn.Module
    x = inputs()
    for _ in range(3):                                      # each call used to add 4 hooks
        with pytest.raises(ValueError, match=f"{attr} that is a function, not an nn.Module"):
            run_with_cache(model, x)
        assert hooks_left(model) == []
    # the gather still captures when the block is left out, and a raising forward leaves nothing either
    _, cache = run_with_cache(model, x, names=["ocr_gather_head.proxies"])
    assert hooks_left(model) == [] and cache.names() == ["ocr_gather_head.proxies"]
    with pytest.raises(RuntimeError):
        run_with_cache(model, x[:, :3], names=["ocr_gather_head.proxies"])
    assert hooks_left(model) == []
