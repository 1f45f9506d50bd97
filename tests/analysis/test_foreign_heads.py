"""rerun_head, region_influence and the folded pixel head on trees ocrviz did not write.

The trees are tests/capture/test_foreign.py's rebuilds of official HRNet-OCR, openseg's SpatialOCRNet
and MMSeg's OCRHead (ConvModules), also with every BatchNorm made a SyncBatchNorm as the official
code builds them (on CPU in eval mode SyncBatchNorm runs as plain BN).  Each analysis is compared with a
full forward of the tree whose sim map or region weights were replaced by hooks (foreign_forward.py).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "capture"))
from foreign_forward import hooked_forward  # noqa: E402
from test_foreign import HRNetOCRHead, MMSegEncoderDecoder, OpensegOCRNet, inputs, randomise_  # noqa: E402

from ocrviz import run_with_cache  # noqa: E402
from ocrviz.analysis import region_influence, rerun_head  # noqa: E402
from ocrviz.analysis.influence import dropped_rows  # noqa: E402
from ocrviz.analysis.ocr_parts import ocr_parts  # noqa: E402
from ocrviz.analysis.pixel_head import Unavailable, explain_pixel_head, pixel_head  # noqa: E402

TREES = {"official": HRNetOCRHead, "openseg": OpensegOCRNet, "mmseg": MMSegEncoderDecoder}


def sync_bn(model: nn.Module) -> nn.Module:
    """Every BatchNorm2d of ``model`` as a SyncBatchNorm (what the official code builds), same statistics."""
    out = nn.SyncBatchNorm.convert_sync_batchnorm(model).eval()
    assert any(isinstance(m, nn.SyncBatchNorm) for m in out.modules())
    assert not any(type(m) is nn.BatchNorm2d for m in out.modules())
    return out


def tree(layout: str, sync: bool = False, seed: int = 0) -> nn.Module:
    model = randomise_(TREES[layout](), seed=seed)
    return sync_bn(model) if sync else model


def edited_sim(sim: torch.Tensor, seed: int) -> torch.Tensor:
    """A valid B x HW x K sim map far from the captured one (rows of a random Dirichlet)."""
    g = np.random.default_rng(seed)
    rows = g.dirichlet(np.full(sim.shape[-1], 0.3), size=sim.shape[:2])
    return torch.from_numpy(rows).to(sim.dtype)


@pytest.mark.parametrize("sync", [False, True], ids=["BatchNorm2d", "SyncBatchNorm"])
@pytest.mark.parametrize("layout", list(TREES))
def test_rerun_head_equals_a_hooked_full_forward(layout: str, sync: bool) -> None:
    model = tree(layout, sync)
    x = inputs()
    out, cache = run_with_cache(model, x)
    parts = ocr_parts(model)
    assert parts.layout == layout
    # no edit: the model's own head logits
    torch.testing.assert_close(rerun_head(model, cache), hooked_forward(model, x, layout), rtol=0, atol=1e-5)
    sim = edited_sim(cache.sim_map, 1)
    want = hooked_forward(model, x, layout, sim=sim)
    assert (want - hooked_forward(model, x, layout)).abs().max() > 0.1          # the edit matters
    assert (rerun_head(model, cache, sim_map=sim) - want).abs().max() <= 1e-5
    rw = torch.softmax(torch.randn(cache.region_weights.shape, generator=torch.Generator().manual_seed(2)).flatten(2),
                       -1).reshape(cache.region_weights.shape)                 # B x K x h x w
    want = hooked_forward(model, x, layout, region_weights=rw)
    assert (rerun_head(model, cache, region_weights=rw) - want).abs().max() <= 1e-5
    want = hooked_forward(model, x, layout, region_weights=rw, sim=sim)
    assert (rerun_head(model, cache, region_weights=rw, sim_map=sim) - want).abs().max() <= 1e-5


@pytest.mark.parametrize("layout", list(TREES))
def test_region_influence_equals_hooked_forwards(layout: str) -> None:
    model = tree(layout, sync=layout == "official")
    x = inputs()[:1]
    _, cache = run_with_cache(model, x)
    inf = region_influence(model, cache)                                          # 1 x HW x K
    sim = cache.sim_map                                                           # 1 x HW x K
    h, w = cache.feature_size
    for p in (0, 17, h * w - 1):
        base = hooked_forward(model, x, layout)[0].flatten(1)[:, p]              # K
        c = int(base.argmax())
        for k in range(sim.shape[2]):
            edit = sim.clone()
            edit[0, p] = dropped_rows(sim[0, p:p + 1])[0, 1 + k]
            dropped = hooked_forward(model, x, layout, sim=edit)[0].flatten(1)[c, p]
            assert abs(float(inf[0, p, k]) - float(base[c] - dropped)) <= 1e-5
    assert float(inf.abs().max()) > 0.01                                          # not all zero (1000x the tolerance)


@pytest.mark.parametrize("layout", list(TREES))
def test_pixel_head_with_sync_batchnorm_equals_a_hooked_full_forward(layout: str) -> None:
    """The official code's SyncBatchNorm (and MMSeg's ConvModule) no longer switch counterfactuals off."""
    model = tree(layout, sync=True, seed=3)
    x = inputs()[:1]
    _, cache = run_with_cache(model, x)
    ph = pixel_head(model, cache)
    assert ph is not None, explain_pixel_head.__name__
    sim = cache.sim_map
    edit = edited_sim(sim, 4)
    want = hooked_forward(model, x, layout, sim=edit)[0].flatten(1).double()    # K x HW
    for p in (0, 9, sim.shape[1] - 1):
        np.testing.assert_allclose(ph.logits(edit[0, p].numpy(), p), want[:, p].numpy(), atol=1e-5, rtol=0)
        np.testing.assert_allclose(ph.logits_rows(edit[0, p:p + 1].numpy(), p)[0], want[:, p].numpy(), atol=1e-5)


def test_heads_that_cannot_be_folded_say_why_in_a_plain_sentence() -> None:
    x = inputs()[:1]
    model = tree("official")
    model.ocr_distri_head.object_context_block.f_up[1][0] = nn.GroupNorm(2, 16)   # not an affine map per pixel
    _, cache = run_with_cache(model.eval(), x)
    with pytest.raises(Unavailable) as e:
        explain_pixel_head(model, cache)
    why = str(e.value)
    assert "GroupNorm" in why and "up projection" in why and why.endswith(".")
    assert not any(s in why for s in ("(", "[", "=", "None", "_", "\n"))         # no Python syntax in a page
    assert pixel_head(model, cache) is None
    plain = nn.Sequential(nn.Conv2d(3, 4, 1))
    with pytest.raises(Unavailable, match="has none of them"):
        explain_pixel_head(plain, cache)
