"""Real MMSeg 1.2.2 attention heads through ocrviz.context_maps: NLHead, DAHead (PAM), CCHead, DNLHead, SegFormer.

Each head builds from its own ``configs/_base_/models`` file with random weights
(``mmseg_heads.build``; the models are fixtures in ``conftest.py``); the upstream
attention is recorded by wrapping the function the upstream module itself calls
(``Spy``), so the reference is MMSeg's / mmcv's / PyTorch's arithmetic, not
ocrviz's.  No skip: without the extra the tests fail and say how to install it.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ocrviz
from mmseg_heads import PIXELS, Spy, cell, check_mass, hooks_left, image, peaked, spy_softmax
from ocrviz.capture import CaptureMismatchError

pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore:.*build_loss:UserWarning", "ignore:.*avg_non_ignore:UserWarning")


# -- NLHead: mmcv NonLocal2d -----------------------------------------------------------------------


def test_nlhead_map_is_the_upstream_softmax_row(nl_model, monkeypatch) -> None:
    block = nl_model.decode_head.nl_block
    spy = Spy(block.embedded_gaussian)
    monkeypatch.setattr(block, "embedded_gaussian", spy)          # forward calls getattr(self, self.mode)
    x = image()
    logits, cache = ocrviz.run_with_cache(nl_model, x)
    assert torch.allclose(logits, nl_model(x), atol=1e-5)         # capture does not change the output
    (pairwise,) = spy.outputs[:1]                                  # B x HW x HW, mmcv's own rows
    for pixel in PIXELS:
        maps = ocrviz.context_maps(cache, pixel)
        assert len(maps) == 1
        m = maps[0]
        assert m.exact and m.site == "decode_head.nl_block" and m.kind == "self_attention"
        assert m.grid == (8, 12) and m.cell == cell(pixel, (8, 12))
        check_mass(m)
        row = pairwise[0, m.cell[0] * 12 + m.cell[1]].double().numpy()
        peaked(row)
        np.testing.assert_allclose(m.weights.ravel(), row, atol=5e-6)     # float32 upstream


def test_nlhead_factors_that_do_not_reproduce_the_output_raise(nl_model, monkeypatch) -> None:
    block = nl_model.decode_head.nl_block
    sharper = lambda theta, phi: torch.softmax(2 * torch.matmul(theta, phi) / theta.shape[-1] ** 0.5, -1)  # noqa: E731
    monkeypatch.setattr(block, "embedded_gaussian", sharper)
    with pytest.raises(CaptureMismatchError, match="conv_out input"):
        ocrviz.run_with_cache(nl_model, image())
    assert hooks_left(nl_model) == []


def test_nlhead_no_hooks_left_after_normal_and_raising_runs(nl_model) -> None:
    ocrviz.run_with_cache(nl_model, image())
    assert hooks_left(nl_model) == []
    with pytest.raises(RuntimeError):
        ocrviz.run_with_cache(nl_model, torch.randn(1, 5, 64, 96))   # wrong channel count raises in the stem
    assert hooks_left(nl_model) == []


# -- DAHead: PAM (HW x HW) and CAM (C x C, no spatial map) ------------------------------------------


def test_dahead_pam_map_is_the_upstream_softmax_row(da_model, monkeypatch) -> None:
    from mmseg.models.utils import self_attention_block as sab
    spy = spy_softmax(monkeypatch, sab)                            # PAM's sim_map, in MMSeg's own code
    logits, cache = ocrviz.run_with_cache(da_model, image(1))
    (sim,) = spy.outputs                                           # B x HW x HW
    for pixel in PIXELS:
        maps = ocrviz.context_maps(cache, pixel)
        assert [m.site for m in maps] == ["decode_head.pam"]      # CAM mixes channels: no spatial map
        m = maps[0]
        assert m.exact and m.grid == (8, 12) and m.cell == cell(pixel, (8, 12))
        check_mass(m)
        row = sim[0, m.cell[0] * 12 + m.cell[1]].double().numpy()
        peaked(row)
        np.testing.assert_allclose(m.weights.ravel(), row, atol=5e-6)     # float32 upstream
    assert hooks_left(da_model) == []


def test_dahead_pam_mismatch_raises_and_leaves_no_hooks(da_model, monkeypatch) -> None:
    from mmseg.models.utils import self_attention_block as sab
    spy = spy_softmax(monkeypatch, sab)
    spy.fn = lambda t, dim: torch.softmax(2 * t, dim)             # MMSeg's block now computes something else
    with pytest.raises(CaptureMismatchError, match="context"):
        ocrviz.run_with_cache(da_model, image(1))
    assert hooks_left(da_model) == []


# -- CCHead: mmcv CrissCrossAttention, called twice -----------------------------------------------


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
    _, cache = ocrviz.run_with_cache(cc_model, image(2))
    assert len(spy.outputs) == 2 == cc_model.decode_head.recurrence
    dense = [_dense(a) for a in spy.outputs]
    for pixel in PIXELS:
        maps = ocrviz.context_maps(cache, pixel)
        assert [m.site for m in maps] == ["decode_head.cca", "decode_head.cca.call1"]
        for m, a in zip(maps, dense):
            assert m.exact and m.kind == "criss_cross" and m.cell == cell(pixel, (8, 12))
            check_mass(m)
            row = a[m.cell[0] * 12 + m.cell[1]].numpy()
            peaked(row[row > 0])
            np.testing.assert_allclose(m.weights.ravel(), row, atol=5e-6)     # float32 upstream
            assert (m.weights > 0).sum() == 8 + 12 - 1                 # the pixel's row and column


def test_cchead_rollout_is_the_product_of_the_two_passes(cc_model, monkeypatch) -> None:
    from mmcv.ops import cc_attention
    from ocrviz.context.criss_cross import rollout_map
    spy = spy_softmax(monkeypatch, cc_attention)
    _, cache = ocrviz.run_with_cache(cc_model, image(2))
    a1, a2 = (_dense(a) for a in spy.outputs)
    m = rollout_map(cache.context_sites, 0, (3, 5))
    assert not m.exact and "rollout" in m.convention
    check_mass(m)
    np.testing.assert_allclose(m.weights.ravel(), (a2 @ a1)[3 * 12 + 5].numpy(), atol=5e-6)  # float32 vs 64
    assert (m.weights > 0).sum() == 96                                 # two passes reach every cell


def test_cchead_mismatch_raises_and_no_hooks_left(cc_model, monkeypatch) -> None:
    from mmcv.ops import cc_attention
    spy = spy_softmax(monkeypatch, cc_attention)
    spy.fn = lambda t, dim: torch.softmax(t / 2, dim)
    with pytest.raises(CaptureMismatchError, match="criss-cross context"):
        ocrviz.run_with_cache(cc_model, image(2))
    assert hooks_left(cc_model) == []


# -- DNLHead: whitened pairwise + unary, theta / phi whitened in place ----------------------------


def test_dnlhead_map_is_half_the_pairwise_row_plus_the_unary_mask(dnl_model, monkeypatch) -> None:
    block = dnl_model.decode_head.dnl_block
    pair_spy = Spy(block.embedded_gaussian)
    monkeypatch.setattr(block, "embedded_gaussian", pair_spy)        # the whitened pairwise rows
    unary = {}
    orig_mask = block.conv_mask.forward
    monkeypatch.setattr(block.conv_mask, "forward", lambda t: unary.setdefault("logits", orig_mask(t)))
    _, cache = ocrviz.run_with_cache(dnl_model, image(5))
    (pair,) = pair_spy.outputs                                          # B x HW x HW, MMSeg's own
    mask = torch.softmax(unary["logits"].reshape(1, -1).double(), -1)[0]   # DNL's unary_mask.softmax(-1)
    for pixel in PIXELS:
        (m,) = ocrviz.context_maps(cache, pixel)
        assert m.exact and m.site == "decode_head.dnl_block" and m.extra["scale_to_head"] == 2.0
        check_mass(m)
        row = pair[0, m.cell[0] * 12 + m.cell[1]].double()
        peaked(row.numpy())
        np.testing.assert_allclose(m.weights.ravel(), ((row + mask) / 2).numpy(), atol=2e-6)
    assert hooks_left(dnl_model) == []


def test_dnlhead_without_the_copy_the_in_place_whitening_would_be_seen(dnl_model) -> None:
    # The hazard the copy guards against: theta's output *is* modified after theta returns.
    block, seen = dnl_model.decode_head.dnl_block, {}
    h = block.theta.register_forward_hook(lambda mod, a, out: seen.update(ref=out, copy=out.clone()))
    try:
        with torch.no_grad():
            dnl_model(image(5))
    finally:
        h.remove()
    assert not torch.allclose(seen["ref"], seen["copy"])


# -- SegformerHead + MiT-B0: 8 attention layers in the backbone --------------------------------------


def test_segformer_one_map_per_mit_layer_equal_to_torch_attention_weights(segformer_model, monkeypatch) -> None:
    per_layer = []
    for layer in [m for m in segformer_model.backbone.modules() if type(m).__name__ == "EfficientMultiheadAttention"]:
        orig = layer.attn.forward

        def forward(*args, _orig=orig, **kwargs):
            out, heads = _orig(*args, **kwargs, average_attn_weights=False)   # PyTorch's own per-head weights
            per_layer.append(heads.detach().clone())
            return out, heads.mean(1)                                      # what the default call returns
        monkeypatch.setattr(layer.attn, "forward", forward)
    _, cache = ocrviz.run_with_cache(segformer_model, image(10))
    assert len(per_layer) == 8
    cvs = []
    for pixel in PIXELS:
        maps = ocrviz.context_maps(cache, pixel)
        assert len(maps) == 8 and [m.site for m in maps] == sorted(m.site for m in maps)
        for m, heads, sr in zip(maps, per_layer, (8, 8, 4, 4, 2, 2, 1, 1)):
            assert m.kind == "transformer" and m.extra["sr_ratio"] == sr
            check_mass(m)
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


def _record_mit_heads(segformer_model, monkeypatch) -> list:
    """Each MiT attention's per-head weights (1 x heads x HW x S), in call order, recorded from PyTorch's
    own MultiheadAttention (the module still returns the head mean it returned before)."""
    per_layer = []
    for layer in [m for m in segformer_model.backbone.modules() if type(m).__name__ == "EfficientMultiheadAttention"]:
        orig = layer.attn.forward

        def forward(*args, _orig=orig, **kwargs):
            out, heads = _orig(*args, **kwargs, average_attn_weights=False)
            per_layer.append(heads.detach().clone())
            return out, heads.mean(1)
        monkeypatch.setattr(layer.attn, "forward", forward)
    return per_layer


def _dense_mit_layer(heads: torch.Tensor, grid: tuple[int, int], sr: int) -> torch.Tensor:
    """HW x HW float64: the heads' mean row of every cell, each reduced cell spread over its sr x sr patch."""
    h, w = grid
    rows = heads[0].double().mean(0)                                           # HW x S
    return torch.stack([torch.from_numpy(np.kron(r.reshape(h // sr, w // sr).numpy(),
                                                 np.ones((sr, sr)) / sr ** 2)).reshape(-1) for r in rows])


def test_segformer_stage_rollout_is_the_product_of_each_stages_layers(segformer_model, monkeypatch) -> None:
    """MiT-B0's two layers per stage composed by rollout (transformer.ROLLOUT): row p of A_2 A_1, each A
    the dense HW x HW matrix built here from PyTorch's own per-head weights (heads averaged, each reduced
    cell spread over its sr x sr patch), against transformer.stage_rollout."""
    from ocrviz.context.transformer import ROLLOUT, stage_rollout, stages
    per_layer = _record_mit_heads(segformer_model, monkeypatch)
    _, cache = ocrviz.run_with_cache(segformer_model, image(10))
    grids = [(16, 24), (8, 12), (4, 6), (2, 3)]
    assert [[r.grid for r in g] for g in stages(cache)] == [[g, g] for g in grids]
    for stage, ((h, w), sr) in enumerate(zip(grids, (8, 4, 2, 1))):
        dense = [_dense_mit_layer(heads, (h, w), sr) for heads in per_layer[2 * stage: 2 * stage + 2]]
        product = dense[1] @ dense[0]
        for c in {(0, 0), (h - 1, w - 1), (h // 2, w // 3)}:
            m = stage_rollout(cache, c, stage)
            assert not m.exact and m.convention == ROLLOUT and m.cell == c
            check_mass(m)
            np.testing.assert_allclose(m.weights.ravel(), product[c[0] * w + c[1]].numpy(), atol=2e-6)
            one = dense[1][c[0] * w + c[1]].numpy()
            assert np.abs(m.weights.ravel() - one).max() > 1e-3              # the rollout is not the last layer
    with pytest.raises(ValueError, match="MiT stages"):
        stage_rollout(cache, (0, 0), 4)
    assert hooks_left(segformer_model) == []


def test_segformer_rollout_across_stages_through_each_patch_embedding(segformer_model, monkeypatch) -> None:
    """transformer.rollout: a last-stage cell traced to the first stage's grid.  Reference built here: the
    dense per-layer matrices from PyTorch's per-head weights, and each patch embedding's uniform k x k
    footprint from torch's own conv2d (a 1/k^2 kernel with the module's stride and padding) applied to
    one-hot grids; the product of them all, row ``cell``."""
    import torch.nn.functional as F

    from ocrviz.context.transformer import PATCH_EMBED, ROLLOUT, rollout
    per_layer = _record_mit_heads(segformer_model, monkeypatch)
    _, cache = ocrviz.run_with_cache(segformer_model, image(10))
    grids, srs = [(16, 24), (8, 12), (4, 6), (2, 3)], (8, 4, 2, 1)

    def footprint(stage):                                                      # HW_out x HW_in
        conv = segformer_model.backbone.layers[stage][0].projection
        (hi, wi), k = grids[stage - 1], conv.kernel_size[0]
        eye = torch.eye(hi * wi, dtype=torch.float64).reshape(hi * wi, 1, hi, wi)
        out = F.conv2d(eye, torch.ones(1, 1, k, k, dtype=torch.float64) / k ** 2, stride=conv.stride,
                       padding=conv.padding)                                   # HW_in x 1 x ho x wo
        assert tuple(out.shape[-2:]) == grids[stage]
        return out.reshape(hi * wi, -1).T

    m_total = torch.eye(6, dtype=torch.float64)
    for stage in (3, 2, 1, 0):
        a1, a2 = (_dense_mit_layer(hd, grids[stage], srs[stage]) for hd in per_layer[2 * stage: 2 * stage + 2])
        m_total = m_total @ a2 @ a1
        if stage:
            m_total = m_total @ footprint(stage)
    for c in [(0, 0), (1, 2), (1, 1)]:
        m = rollout(cache, c)
        assert not m.exact and m.convention == f"{ROLLOUT}; {PATCH_EMBED}" and m.weights.shape == (16, 24)
        check_mass(m)
        ref = m_total[c[0] * 3 + c[1]].numpy()
        np.testing.assert_allclose(m.weights.ravel(), ref, atol=2e-6)
        assert m.off_grid == pytest.approx(1 - ref.sum(), abs=1e-6)          # float32 upstream
    assert rollout(cache, (0, 0)).off_grid > 0.01                              # a corner cell reads the padding
    assert hooks_left(segformer_model) == []


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
