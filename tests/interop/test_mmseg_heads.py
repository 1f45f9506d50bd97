"""Real MMSeg 1.2.2 context heads through ocrviz.context_maps: each map against the upstream code's own tensors.

Each head builds from its own ``configs/_base_/models`` file with random weights
(``mmseg_heads.build``); the upstream attention is recorded by wrapping the
function the upstream module itself calls (``Spy``), so the reference is
MMSeg's / mmcv's arithmetic, not ocrviz's.  No skip: without the extra the
test fails and says how to install it.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ocrviz
from mmseg_heads import Spy, build, hooks_left, spy_softmax
from ocrviz.capture import CaptureMismatchError

pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore:.*build_loss:UserWarning", "ignore:.*avg_non_ignore:UserWarning")

IMAGE = (1, 3, 64, 96)          # an 8 x 12 grid at output stride 8 (h != w catches transposes)
PIXELS = ((0, 0), (30, 50), (63, 95), (41, 7))


def _image(seed: int = 0) -> torch.Tensor:
    return torch.randn(*IMAGE, generator=torch.Generator().manual_seed(seed))


def _cell(pixel, grid):
    return pixel[0] * grid[0] // IMAGE[2], pixel[1] * grid[1] // IMAGE[3]


def _check_mass(m) -> None:
    assert abs(m.weights.sum() + m.off_grid - 1) < 1e-6
    assert (m.weights >= 0).all()


def _peaked(row: np.ndarray) -> None:
    # A near-uniform row would let a wrong index pass: the weights must matter.
    cv = row.std() / row.mean()                      # coefficient of variation; 0 for a uniform row
    assert cv > 0.5, f"row too flat for a meaningful comparison (std / mean {cv:.3f}, max {row.max():.4f})"


# -- NLHead: mmcv NonLocal2d -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def nl_model():
    return build("nonlocal_r50-d8")


def test_nlhead_map_is_the_upstream_softmax_row(nl_model, monkeypatch) -> None:
    block = nl_model.decode_head.nl_block
    spy = Spy(block.embedded_gaussian)
    monkeypatch.setattr(block, "embedded_gaussian", spy)          # forward calls getattr(self, self.mode)
    x = _image()
    logits, cache = ocrviz.run_with_cache(nl_model, x)
    assert torch.allclose(logits, nl_model(x), atol=1e-5)         # capture does not change the output
    (pairwise,) = spy.outputs[:1]                                  # B x HW x HW, mmcv's own rows
    for pixel in PIXELS:
        maps = ocrviz.context_maps(cache, pixel)
        assert len(maps) == 1
        m = maps[0]
        assert m.exact and m.site == "decode_head.nl_block" and m.kind == "self_attention"
        assert m.grid == (8, 12) and m.cell == _cell(pixel, (8, 12))
        _check_mass(m)
        row = pairwise[0, m.cell[0] * 12 + m.cell[1]].double().numpy()
        _peaked(row)
        np.testing.assert_allclose(m.weights.ravel(), row, atol=5e-6)     # float32 upstream


def test_nlhead_factors_that_do_not_reproduce_the_output_raise(nl_model, monkeypatch) -> None:
    block = nl_model.decode_head.nl_block
    sharper = lambda theta, phi: torch.softmax(2 * torch.matmul(theta, phi) / theta.shape[-1] ** 0.5, -1)  # noqa: E731
    monkeypatch.setattr(block, "embedded_gaussian", sharper)
    with pytest.raises(CaptureMismatchError, match="conv_out input"):
        ocrviz.run_with_cache(nl_model, _image())
    assert hooks_left(nl_model) == []


def test_nlhead_no_hooks_left_after_normal_and_raising_runs(nl_model) -> None:
    ocrviz.run_with_cache(nl_model, _image())
    assert hooks_left(nl_model) == []
    with pytest.raises(RuntimeError):
        ocrviz.run_with_cache(nl_model, torch.randn(1, 5, 64, 96))   # wrong channel count raises in the stem
    assert hooks_left(nl_model) == []


# -- DAHead: PAM (HW x HW) and CAM (C x C, no spatial map) ------------------------------------------
@pytest.fixture(scope="module")
def da_model():
    return build("danet_r50-d8")


def test_dahead_pam_map_is_the_upstream_softmax_row(da_model, monkeypatch) -> None:
    from mmseg.models.utils import self_attention_block as sab
    spy = spy_softmax(monkeypatch, sab)                            # PAM's sim_map, in MMSeg's own code
    logits, cache = ocrviz.run_with_cache(da_model, _image(1))
    (sim,) = spy.outputs                                           # B x HW x HW
    for pixel in PIXELS:
        maps = ocrviz.context_maps(cache, pixel)
        assert [m.site for m in maps] == ["decode_head.pam"]      # CAM mixes channels: no spatial map
        m = maps[0]
        assert m.exact and m.grid == (8, 12) and m.cell == _cell(pixel, (8, 12))
        _check_mass(m)
        row = sim[0, m.cell[0] * 12 + m.cell[1]].double().numpy()
        _peaked(row)
        np.testing.assert_allclose(m.weights.ravel(), row, atol=5e-6)     # float32 upstream
    assert hooks_left(da_model) == []


def test_dahead_pam_mismatch_raises_and_leaves_no_hooks(da_model, monkeypatch) -> None:
    from mmseg.models.utils import self_attention_block as sab
    spy = spy_softmax(monkeypatch, sab)
    spy.fn = lambda t, dim: torch.softmax(2 * t, dim)             # MMSeg's block now computes something else
    with pytest.raises(CaptureMismatchError, match="context"):
        ocrviz.run_with_cache(da_model, _image(1))
    assert hooks_left(da_model) == []


# -- CCHead: mmcv CrissCrossAttention, called twice -----------------------------------------------
@pytest.fixture(scope="module")
def cc_model():
    return build("ccnet_r50-d8")


def _dense(attn: torch.Tensor) -> torch.Tensor:
    """mmcv's B x H x W x (H + W) criss-cross weights as an HW x HW matrix (batch 0), float64."""
    _, h, w, _ = attn.shape
    a = torch.zeros(h, w, h, w, dtype=torch.float64)
    for r in range(h):
        for c in range(w):
            a[r, c, :, c] += attn[0, r, c, :h].double()
            a[r, c, r, :] += attn[0, r, c, h:].double()
    return a.reshape(h * w, h * w)


def test_cchead_one_exact_map_per_pass_equal_to_mmcv_weights(cc_model, monkeypatch) -> None:
    from mmcv.ops import cc_attention
    spy = spy_softmax(monkeypatch, cc_attention)
    _, cache = ocrviz.run_with_cache(cc_model, _image(2))
    assert len(spy.outputs) == 2 == cc_model.decode_head.recurrence
    dense = [_dense(a) for a in spy.outputs]
    for pixel in PIXELS:
        maps = ocrviz.context_maps(cache, pixel)
        assert [m.site for m in maps] == ["decode_head.cca", "decode_head.cca.call1"]
        for m, a in zip(maps, dense):
            assert m.exact and m.kind == "criss_cross" and m.cell == _cell(pixel, (8, 12))
            _check_mass(m)
            row = a[m.cell[0] * 12 + m.cell[1]].numpy()
            _peaked(row[row > 0])
            np.testing.assert_allclose(m.weights.ravel(), row, atol=5e-6)     # float32 upstream
            assert (m.weights > 0).sum() == 8 + 12 - 1                 # the pixel's row and column


def test_cchead_rollout_is_the_product_of_the_two_passes(cc_model, monkeypatch) -> None:
    from mmcv.ops import cc_attention
    from ocrviz.context.criss_cross import rollout_map
    spy = spy_softmax(monkeypatch, cc_attention)
    _, cache = ocrviz.run_with_cache(cc_model, _image(2))
    a1, a2 = (_dense(a) for a in spy.outputs)
    m = rollout_map(cache.context_sites, 0, (3, 5))
    assert not m.exact and "rollout" in m.convention
    _check_mass(m)
    np.testing.assert_allclose(m.weights.ravel(), (a2 @ a1)[3 * 12 + 5].numpy(), atol=5e-6)  # float32 vs 64
    assert (m.weights > 0).sum() == 96                                 # two passes reach every cell


def test_cchead_mismatch_raises_and_no_hooks_left(cc_model, monkeypatch) -> None:
    from mmcv.ops import cc_attention
    spy = spy_softmax(monkeypatch, cc_attention)
    spy.fn = lambda t, dim: torch.softmax(t / 2, dim)
    with pytest.raises(CaptureMismatchError, match="criss-cross context"):
        ocrviz.run_with_cache(cc_model, _image(2))
    assert hooks_left(cc_model) == []


# -- PSPHead: MMSeg PPM ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def psp_model():
    return build("pspnet_r50-d8")


def test_psphead_map_is_mmseg_ppm_linear_path_with_equal_scale_shares(psp_model) -> None:
    import copy
    _, cache = ocrviz.run_with_cache(psp_model, _image(3))
    ppm = copy.deepcopy(psp_model.decode_head.psp_modules)
    for branch in ppm:
        branch[1] = torch.nn.Identity()                               # keep MMSeg's pooling and resize only
    h, w = 8, 12
    onehot = torch.eye(h * w, dtype=torch.float64).reshape(1, h * w, h, w)   # channel n = one-hot cell n
    with torch.no_grad():
        outs = ppm(onehot)                                             # MMSeg's own PPM.forward
    for pixel in PIXELS:
        (m,) = ocrviz.context_maps(cache, pixel)
        assert m.site == "decode_head.psp_modules" and m.kind == "pooling_bins"
        assert not m.exact and "scale" in m.convention
        _check_mass(m)
        r, c = m.cell
        expected = sum(o[0, :, r, c] for o in outs) / len(outs)       # HW
        np.testing.assert_allclose(m.weights.ravel(), expected.numpy(), atol=1e-9)
        assert len(m.sources) == 1 + 4 + 9 + 36 and abs(m.source_weights.sum() - 1) < 1e-9
        assert m.weights.min() > 0                                     # the 1x1 bin reaches every cell


def test_psphead_wrong_geometry_raises(psp_model, monkeypatch) -> None:
    import mmseg.models.decode_heads.psp_head as psp
    monkeypatch.setattr(psp, "resize", lambda t, size, mode, align_corners: torch.nn.functional.interpolate(
        t, size=size, mode="nearest"))                                 # MMSeg now upsamples differently
    with pytest.raises(CaptureMismatchError, match="upsampled"):
        ocrviz.run_with_cache(psp_model, _image(3))
    assert hooks_left(psp_model) == []


# -- GCHead: mmcv ContextBlock -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gc_model():
    return build("gcnet_r50-d8")


def test_gchead_map_is_the_one_softmax_mask(gc_model, monkeypatch) -> None:
    block = gc_model.decode_head.gc_block
    spy = Spy(block.softmax.forward)
    monkeypatch.setattr(block.softmax, "forward", spy)
    _, cache = ocrviz.run_with_cache(gc_model, _image(4))
    (mask,) = spy.outputs                                              # B x 1 x HW, mmcv's own mask
    maps = [ocrviz.context_maps(cache, p)[0] for p in PIXELS]
    for m in maps:
        assert m.exact and m.site == "decode_head.gc_block" and m.kind == "global_context"
        _check_mass(m)
        np.testing.assert_allclose(m.weights.ravel(), mask[0, 0].double().numpy(), atol=1e-7)
    _peaked(maps[0].weights.ravel())
    assert hooks_left(gc_model) == []


# -- DNLHead: whitened pairwise + unary, theta / phi whitened in place ----------------------------
@pytest.fixture(scope="module")
def dnl_model():
    return build("dnl_r50-d8")


def test_dnlhead_map_is_half_the_pairwise_row_plus_the_unary_mask(dnl_model, monkeypatch) -> None:
    block = dnl_model.decode_head.dnl_block
    pair_spy = Spy(block.embedded_gaussian)
    monkeypatch.setattr(block, "embedded_gaussian", pair_spy)        # the whitened pairwise rows
    unary = {}
    orig_mask = block.conv_mask.forward
    monkeypatch.setattr(block.conv_mask, "forward", lambda t: unary.setdefault("logits", orig_mask(t)))
    _, cache = ocrviz.run_with_cache(dnl_model, _image(5))
    (pair,) = pair_spy.outputs                                          # B x HW x HW, MMSeg's own
    mask = torch.softmax(unary["logits"].reshape(1, -1).double(), -1)[0]   # DNL's unary_mask.softmax(-1)
    for pixel in PIXELS:
        (m,) = ocrviz.context_maps(cache, pixel)
        assert m.exact and m.site == "decode_head.dnl_block" and m.extra["scale_to_head"] == 2.0
        _check_mass(m)
        row = pair[0, m.cell[0] * 12 + m.cell[1]].double()
        _peaked(row.numpy())
        np.testing.assert_allclose(m.weights.ravel(), ((row + mask) / 2).numpy(), atol=2e-6)
    assert hooks_left(dnl_model) == []


def test_dnlhead_without_the_copy_the_in_place_whitening_would_be_seen(dnl_model) -> None:
    # The hazard the copy guards against: theta's output *is* modified after theta returns.
    block, seen = dnl_model.decode_head.dnl_block, {}
    h = block.theta.register_forward_hook(lambda mod, a, out: seen.update(ref=out, copy=out.clone()))
    try:
        with torch.no_grad():
            dnl_model(_image(5))
    finally:
        h.remove()
    assert not torch.allclose(seen["ref"], seen["copy"])


# -- ANNHead: AFNB and APNB attend to 110 pooled bins ---------------------------------------------
@pytest.fixture(scope="module")
def ann_model():
    return build("ann_r50-d8")


def test_annhead_maps_are_the_bin_rows_spread_uniformly_over_each_bin(ann_model, monkeypatch) -> None:
    from mmseg.models.utils import self_attention_block as sab
    spy = spy_softmax(monkeypatch, sab)
    _, cache = ocrviz.run_with_cache(ann_model, _image(6))
    assert len(spy.outputs) == 2                                       # AFNB stage, APNB stage
    ppm = ann_model.decode_head.context.stages[0].key_downsample       # MMSeg's own PPMConcat
    with torch.no_grad():
        spread = ppm(torch.eye(96, dtype=torch.float64).reshape(1, 96, 8, 12))[0].T   # 110 x HW
    assert spread.shape == (110, 96)
    for pixel in PIXELS:
        maps = ocrviz.context_maps(cache, pixel)
        assert [m.site for m in maps] == ["decode_head.fusion.stages.0", "decode_head.context.stages.0"]
        for m, sim in zip(maps, spy.outputs):
            assert m.exact and m.kind == "pooling_bins" and len(m.sources) == 110
            _check_mass(m)
            row = sim[0, m.cell[0] * 12 + m.cell[1]].double()
            _peaked(row.numpy())
            # float32 upstream vs float64 here, logits of O(100) after BN + ReLU keys: 1e-4
            np.testing.assert_allclose(m.source_weights, row.numpy(), atol=1e-4)
            np.testing.assert_allclose(m.weights.ravel(), (row @ spread).numpy(), atol=1e-4)
    assert hooks_left(ann_model) == []


# -- ISAHead: global then local relation on batch-reshaped, padded grids ----------------------------
@pytest.fixture(scope="module")
def isa_model():
    return build("isanet_r50-d8", qk_gain=2.0, down_factor=(3, 5))   # 8 x 12 grid -> padded 9 x 15: padding and h != w


def test_isahead_map_is_the_product_along_each_sources_one_path(isa_model, monkeypatch) -> None:
    from mmseg.models.utils import self_attention_block as sab
    spy = spy_softmax(monkeypatch, sab)
    _, cache = ocrviz.run_with_cache(isa_model, _image(7))
    glob, loc = spy.outputs                       # (L=15) x (G=9) x G and (G=9) x L x L, MMSeg's own
    assert glob.shape == (15, 9, 9) and loc.shape == (9, 15, 15)
    top, left = 0, 1                              # MMSeg pads pad // 2 before: pad_h 1 -> 0, pad_w 3 -> 1
    off = []
    for pixel in PIXELS:
        (m,) = ocrviz.context_maps(cache, pixel)
        assert m.exact and m.kind == "isa" and m.site == "decode_head"
        _check_mass(m)
        gy, ly = divmod(m.cell[0] + top, 3)
        gx, lx = divmod(m.cell[1] + left, 5)
        expected = np.zeros((9, 15))
        for y in range(9):                        # every padded source cell, one path each
            for x in range(15):
                gy2, ly2 = divmod(y, 3)
                gx2, lx2 = divmod(x, 5)
                via = loc[gy * 3 + gx, ly * 5 + lx, ly2 * 5 + lx2]            # p -> its group's offset (ly2, lx2)
                expected[y, x] = via * glob[ly2 * 5 + lx2, gy * 3 + gx, gy2 * 3 + gx2]
        np.testing.assert_allclose(m.weights, expected[top:top + 8, left:left + 12], atol=2e-6)
        assert abs(m.off_grid - (expected.sum() - expected[top:top + 8, left:left + 12].sum())) < 1e-6
        off.append(m.off_grid)
        _peaked(m.weights.ravel())
    assert max(off) > 1e-3                        # weight does fall on the padding
    assert hooks_left(isa_model) == []


# -- EMAHead: responsibilities after 3 EM stages under no_grad ----------------------------------------
@pytest.fixture(scope="module")
def ema_model():
    model = build("emanet_r50-d8")
    with torch.no_grad():                       # larger features: responsibilities far from uniform
        model.decode_head.ema_mid_conv.conv.weight.mul_(8)
    return model


def test_emahead_map_is_the_exact_linear_identity_of_mmseg_em(ema_model, monkeypatch) -> None:
    import mmseg.models.decode_heads.ema_head as ema_head
    spy = spy_softmax(monkeypatch, ema_head)
    ema = ema_model.decode_head.ema_module
    io = {}
    orig = ema.forward

    def forward(f):
        out = orig(f)
        io.update({"in": f, "out": out.clone()})                       # the head relu's `out` in place
        return out
    monkeypatch.setattr(ema, "forward", forward)
    _, cache = ocrviz.run_with_cache(ema_model, _image(8))
    assert len(spy.outputs) == ema.num_stages == 3
    attn = spy.outputs[-1][0].double()                                 # HW x K, MMSeg's last responsibilities
    feats = io["in"][0].reshape(io["in"].shape[1], -1).double()        # C x HW
    normed = attn / attn.sum(0, keepdim=True)                          # over pixels
    z = (feats @ normed).norm(dim=0)                                   # K
    weights = (attn / z) @ normed.T                                    # HW x HW: recon = feats @ weights.T
    # the identity reproduces MMSeg's own output (before the head's in-place relu)
    np.testing.assert_allclose((feats @ weights.T).numpy(), io["out"][0].reshape(feats.shape).double().numpy(),
                               atol=1e-4 * float(io["out"].abs().max()))
    for pixel in PIXELS:
        (m,) = ocrviz.context_maps(cache, pixel)
        assert m.exact and m.kind == "em" and m.site == "decode_head.ema_module" and len(m.sources) == 64
        _check_mass(m)
        row = weights[m.cell[0] * 12 + m.cell[1]]
        _peaked(row.numpy())
        np.testing.assert_allclose(m.weights.ravel(), (row / row.sum()).numpy(), atol=1e-6)
        assert abs(m.extra["scale_to_head"] - float(row.sum())) < 1e-4 * float(row.sum())
    assert hooks_left(ema_model) == []


# -- SegformerHead + MiT-B0: 8 attention layers in the backbone --------------------------------------
@pytest.fixture(scope="module")
def segformer_model():
    model = build("segformer_mit-b0")
    g = torch.Generator().manual_seed(9)
    with torch.no_grad():                       # MMSeg's trunc-normal init gives near-uniform rows
        for m in model.backbone.modules():
            if isinstance(m, torch.nn.MultiheadAttention):
                m.in_proj_weight.normal_(0, 0.6, generator=g)
    return model


def test_segformer_one_map_per_mit_layer_equal_to_torch_attention_weights(segformer_model, monkeypatch) -> None:
    per_layer = []
    for layer in [m for m in segformer_model.backbone.modules() if type(m).__name__ == "EfficientMultiheadAttention"]:
        orig = layer.attn.forward

        def forward(*args, _orig=orig, **kwargs):
            out, heads = _orig(*args, **kwargs, average_attn_weights=False)   # PyTorch's own per-head weights
            per_layer.append(heads.detach().clone())
            return out, heads.mean(1)                                      # what the default call returns
        monkeypatch.setattr(layer.attn, "forward", forward)
    _, cache = ocrviz.run_with_cache(segformer_model, _image(10))
    assert len(per_layer) == 8
    cvs = []
    for pixel in PIXELS:
        maps = ocrviz.context_maps(cache, pixel)
        assert len(maps) == 8 and [m.site for m in maps] == sorted(m.site for m in maps)
        for m, heads, sr in zip(maps, per_layer, (8, 8, 4, 4, 2, 2, 1, 1)):
            assert m.kind == "transformer" and m.extra["sr_ratio"] == sr
            _check_mass(m)
            h, w = m.grid
            assert (h, w) == {8: (16, 24), 4: (8, 12), 2: (4, 6), 1: (2, 3)}[sr]
            rows = heads[0, :, m.cell[0] * w + m.cell[1]].double()          # heads x S reduced cells
            cvs.append(float((rows.std(1, unbiased=False) / rows.mean(1)).max()))
            row = rows.mean(0)                                             # mean over heads
            expected = np.kron(row.reshape(h // sr, w // sr).numpy(), np.ones((sr, sr)) / sr ** 2)
            np.testing.assert_allclose(m.weights, expected, atol=2e-6)
            assert m.exact == (heads.shape[1] == 1 and sr == 1) and (m.exact or m.convention)
    assert np.median(cvs) > 0.5                  # the heads' rows are far from uniform
    assert hooks_left(segformer_model) == []


# -- every head: forward order, nothing left behind -----------------------------------------------------
ALL = ("nl_model", "da_model", "cc_model", "psp_model", "gc_model", "dnl_model", "ann_model", "isa_model",
       "ema_model", "segformer_model")


@pytest.mark.parametrize("fixture", ALL)
def test_every_head_leaves_no_hook_after_a_raising_run_and_captures_again(fixture, request) -> None:
    model = request.getfixturevalue(fixture)
    with pytest.raises(RuntimeError):
        ocrviz.run_with_cache(model, torch.randn(1, 5, 64, 96))       # wrong channel count: raises in the stem
    assert hooks_left(model) == []
    logits, cache = ocrviz.run_with_cache(model, _image(11))
    assert hooks_left(model) == []
    with torch.no_grad():
        plain = model(_image(11))
    first = lambda t: t[0] if isinstance(t, (tuple, list)) else t     # noqa: E731  (DAHead returns three)
    assert torch.allclose(first(logits), first(plain), atol=1e-5)     # capture does not change the output
    maps = ocrviz.context_maps(cache, (20, 30))
    assert maps and len(maps) == len(cache.context_sites)
    for m in maps:
        _check_mass(m)
        assert m.exact != bool(m.convention)


def _sharper(spy: Spy) -> None:
    spy.fn = lambda t, dim=None, **kw: torch.softmax(1.5 * t, dim)


def _break(fixture: str, model, monkeypatch) -> None:
    """Change the upstream arithmetic so that ocrviz's recomputation must disagree."""
    from mmseg.models.utils import self_attention_block as sab
    import mmseg.models.decode_heads.ema_head as ema_head
    if fixture in ("ann_model", "isa_model"):
        _sharper(spy_softmax(monkeypatch, sab))
    elif fixture == "ema_model":
        _sharper(spy_softmax(monkeypatch, ema_head))
    elif fixture == "gc_model":
        block = model.decode_head.gc_block
        monkeypatch.setattr(block.softmax, "forward", lambda t: torch.softmax(1.5 * t, dim=2))
    elif fixture == "dnl_model":
        block = model.decode_head.dnl_block
        monkeypatch.setattr(block, "temperature", block.temperature)   # ocrviz reads it: change the op instead
        orig = block.embedded_gaussian
        monkeypatch.setattr(block, "embedded_gaussian", lambda a, b: orig(1.5 * a, b))
    elif fixture == "segformer_model":
        attn = next(m for m in model.backbone.modules() if isinstance(m, torch.nn.MultiheadAttention))
        orig = attn.forward
        monkeypatch.setattr(attn, "forward", lambda *a, **k: (lambda o: (1.01 * o[0], o[1]))(orig(*a, **k)))


@pytest.mark.parametrize("fixture", ("ann_model", "isa_model", "ema_model", "gc_model", "dnl_model", "segformer_model"))
def test_changed_upstream_arithmetic_raises_and_leaves_no_hook(fixture, request, monkeypatch) -> None:
    model = request.getfixturevalue(fixture)
    _break(fixture, model, monkeypatch)
    with pytest.raises(CaptureMismatchError):
        ocrviz.run_with_cache(model, _image(12))
    assert hooks_left(model) == []


# -- large grids: rows sampled at capture, the clicked row checked when read -----------------------------
def test_large_grid_checks_sampled_rows_at_capture_and_the_clicked_row_when_read() -> None:
    from mmcv.cnn import NonLocal2d
    from ocrviz.context import self_attention as sa
    torch.manual_seed(0)
    block = NonLocal2d(16, reduction=2).eval()
    x = torch.randn(1, 16, 66, 66)                                     # 4356 cells > SAMPLE
    assert 66 * 66 > sa.SAMPLE
    spy = Spy(block.embedded_gaussian)
    block.embedded_gaussian = spy
    _, cache = ocrviz.run_with_cache(block, x)
    del block.embedded_gaussian
    (m,) = ocrviz.context_maps(cache, (40, 13))
    np.testing.assert_allclose(m.weights.ravel(), spy.outputs[0][0, 40 * 66 + 13].double().numpy(), atol=5e-6)
    record = cache.context_sites[0]
    p = 40 * 66 + 14                                                   # a row the capture did not sample
    assert p not in set(sa.check_rows(66 * 66).tolist())
    record.factors["context"][0, :, p] += 0.1                          # the module's own context, tampered
    with pytest.raises(CaptureMismatchError, match="clicked pixel"):
        ocrviz.context_maps(cache, (40, 14))
    assert hooks_left(block) == []


# -- ASPPHead (DeepLabV3) and DepthwiseSeparableASPPHead (DeepLabV3+): a stated convention -------------
@pytest.mark.parametrize("config", ["deeplabv3_r50-d8", "deeplabv3plus_r50-d8"])
def test_mmseg_aspp_map_is_shares_times_the_exact_footprint(config, monkeypatch) -> None:
    model = build(config, dilations=(1, 2, 3, 5))      # rates that land inside an 8 x 12 grid
    head = model.decode_head
    seen = {}
    orig = head.bottleneck.forward
    monkeypatch.setattr(head.bottleneck, "forward", lambda t: (seen.setdefault("cat", t), orig(t))[1])
    _, cache = ocrviz.run_with_cache(model, _image(13))
    cat = seen["cat"][0].double()                                      # MMSeg's own bottleneck input
    weight = head.bottleneck.conv.weight.detach().double()
    sizes = [head.channels] * (1 + len(head.aspp_modules))            # every branch gives `channels`
    box = torch.ones(1, 1, 3, 3, dtype=torch.float64) / 9
    for pixel in PIXELS:
        (m,) = ocrviz.context_maps(cache, pixel)
        assert m.kind == "aspp" and not m.exact and "3x3 bottleneck" in m.convention
        _check_mass(m)
        r, c = m.cell
        # shares: each branch's slice of the 3x3 bottleneck applied to MMSeg's own branch outputs, at p
        parts = torch.split(cat, sizes)
        wparts = torch.split(weight, sizes, dim=1)
        norms = np.array([float(F_conv(p_, w_)[:, r, c].norm()) for p_, w_ in zip(parts, wparts)])
        np.testing.assert_allclose(m.source_weights, norms / norms.sum(), atol=1e-9)
        # footprint: a delta at p spread by the bottleneck's 3x3 window, then by each branch's taps
        delta = torch.zeros(1, 1, 8, 12, dtype=torch.float64)
        delta[0, 0, r, c] = 1
        window = torch.nn.functional.conv2d(delta, box, padding=1)
        spreads = [window.sum() * torch.ones_like(delta) / 96, window]
        spreads += [torch.nn.functional.conv2d(window, box, padding=d, dilation=d) for d in (2, 3, 5)]
        expected = sum(s * sp[0, 0] for s, sp in zip(m.source_weights, spreads))
        np.testing.assert_allclose(m.weights, expected.numpy(), atol=1e-12)
    assert hooks_left(model) == []


def F_conv(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.conv2d(x[None], w, padding=w.shape[-1] // 2)[0]
