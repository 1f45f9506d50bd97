"""Real MMSeg 1.2.2 pooled / factored heads through ocrviz.context_maps: PSP, GC, ANN, ISA, EMA, ASPP (V3, V3+).

References come from the upstream modules' own tensors (their softmax outputs,
their PPM / PPMConcat applied to one-hot cells, their bottleneck input); see
``test_mmseg_heads_attention.py`` for the approach.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ocrviz
from mmseg_heads import PIXELS, Spy, build, check_mass, hooks_left, image, peaked, spy_softmax
from ocrviz.capture import CaptureMismatchError

pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore:.*build_loss:UserWarning", "ignore:.*avg_non_ignore:UserWarning")


# -- PSPHead: MMSeg PPM ------------------------------------------------------------------------------


def test_psphead_map_is_mmseg_ppm_linear_path_with_equal_scale_shares(psp_model) -> None:
    import copy
    _, cache = ocrviz.run_with_cache(psp_model, image(3))
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
        check_mass(m)
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
        ocrviz.run_with_cache(psp_model, image(3))
    assert hooks_left(psp_model) == []


# -- GCHead: mmcv ContextBlock -------------------------------------------------------------------------


def test_gchead_map_is_the_one_softmax_mask(gc_model, monkeypatch) -> None:
    block = gc_model.decode_head.gc_block
    spy = Spy(block.softmax.forward)
    monkeypatch.setattr(block.softmax, "forward", spy)
    _, cache = ocrviz.run_with_cache(gc_model, image(4))
    (mask,) = spy.outputs                                              # B x 1 x HW, mmcv's own mask
    maps = [ocrviz.context_maps(cache, p)[0] for p in PIXELS]
    for m in maps:
        assert m.exact and m.site == "decode_head.gc_block" and m.kind == "global_context"
        check_mass(m)
        np.testing.assert_allclose(m.weights.ravel(), mask[0, 0].double().numpy(), atol=1e-7)
    peaked(maps[0].weights.ravel())
    assert hooks_left(gc_model) == []


# -- ANNHead: AFNB and APNB attend to 110 pooled bins ---------------------------------------------


def test_annhead_maps_are_the_bin_rows_spread_uniformly_over_each_bin(ann_model, monkeypatch) -> None:
    from mmseg.models.utils import self_attention_block as sab
    spy = spy_softmax(monkeypatch, sab)
    _, cache = ocrviz.run_with_cache(ann_model, image(6))
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
            check_mass(m)
            row = sim[0, m.cell[0] * 12 + m.cell[1]].double()
            peaked(row.numpy())
            # float32 upstream vs float64 here, logits of O(100) after BN + ReLU keys: 1e-4
            np.testing.assert_allclose(m.source_weights, row.numpy(), atol=1e-4)
            np.testing.assert_allclose(m.weights.ravel(), (row @ spread).numpy(), atol=1e-4)
    assert hooks_left(ann_model) == []


# -- ISAHead: global then local relation on batch-reshaped, padded grids ----------------------------


def test_isahead_map_is_the_product_along_each_sources_one_path(isa_model, monkeypatch) -> None:
    from mmseg.models.utils import self_attention_block as sab
    spy = spy_softmax(monkeypatch, sab)
    _, cache = ocrviz.run_with_cache(isa_model, image(7))
    glob, loc = spy.outputs                       # (L=15) x (G=9) x G and (G=9) x L x L, MMSeg's own
    assert glob.shape == (15, 9, 9) and loc.shape == (9, 15, 15)
    top, left = 0, 1                              # MMSeg pads pad // 2 before: pad_h 1 -> 0, pad_w 3 -> 1
    off = []
    for pixel in PIXELS:
        (m,) = ocrviz.context_maps(cache, pixel)
        assert m.exact and m.kind == "isa" and m.site == "decode_head"
        check_mass(m)
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
        peaked(m.weights.ravel())
    assert max(off) > 1e-3                        # weight does fall on the padding
    assert hooks_left(isa_model) == []


# -- EMAHead: responsibilities after 3 EM stages under no_grad ----------------------------------------


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
    _, cache = ocrviz.run_with_cache(ema_model, image(8))
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
        check_mass(m)
        row = weights[m.cell[0] * 12 + m.cell[1]]
        peaked(row.numpy())
        np.testing.assert_allclose(m.weights.ravel(), (row / row.sum()).numpy(), atol=1e-6)
        assert abs(m.extra["scale_to_head"] - float(row.sum())) < 1e-4 * float(row.sum())
    assert hooks_left(ema_model) == []


# -- ASPPHead (DeepLabV3) and DepthwiseSeparableASPPHead (DeepLabV3+): a stated convention -------------
@pytest.mark.parametrize("config", ["deeplabv3_r50-d8", "deeplabv3plus_r50-d8"])
def test_mmseg_aspp_map_is_shares_times_the_exact_footprint(config, monkeypatch) -> None:
    model = build(config, dilations=(1, 2, 3, 5))      # rates that land inside an 8 x 12 grid
    head = model.decode_head
    seen = {}
    orig = head.bottleneck.forward
    monkeypatch.setattr(head.bottleneck, "forward", lambda t: (seen.setdefault("cat", t), orig(t))[1])
    _, cache = ocrviz.run_with_cache(model, image(13))
    cat = seen["cat"][0].double()                                      # MMSeg's own bottleneck input
    weight = head.bottleneck.conv.weight.detach().double()
    sizes = [head.channels] * (1 + len(head.aspp_modules))            # every branch gives `channels`
    box = torch.ones(1, 1, 3, 3, dtype=torch.float64) / 9
    for pixel in PIXELS:
        (m,) = ocrviz.context_maps(cache, pixel)
        assert m.kind == "aspp" and not m.exact and "3x3 bottleneck" in m.convention
        check_mass(m)
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
