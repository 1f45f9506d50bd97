"""MMSeg's own OCRHead (query/key/value/out_project, bottleneck, ConvModule) in ocrviz's analyses.

Real MMSegmentation builds its OCRNet-HR18; rerun_head, region_influence and the folded pixel head
(kernel counterfactuals) run on MMSeg's module tree through foreign capture and are compared with a
full forward of MMSeg's model whose sim map / region weights were replaced by hooks
(tests/analysis/foreign_forward.py), also with every BatchNorm made a SyncBatchNorm as MMSeg's
Cityscapes configs build them.  attention_report and error_blame on MMSeg's tree equal those on the
same weights loaded into ocrviz's own HRNet-OCR by from_checkpoint.
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import ocrviz
from mmseg_env import hr18_model_config, import_mmseg
from random_bn import randomise_bn
from ocrviz import run_with_cache
from ocrviz.analysis import attention_report, error_blame, region_influence, rerun_head
from ocrviz.analysis.influence import dropped_rows
from ocrviz.analysis.ocr_parts import ocr_parts
from ocrviz.analysis.pixel_head import pixel_head
from ocrviz.widgets.kernel_cf import KernelCounterfactuals

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))
from foreign_forward import hooked_forward  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore:.*build_loss:UserWarning", "ignore:.*avg_non_ignore:UserWarning")
IMAGE = (1, 3, 64, 128)
K = 19


@pytest.fixture(scope="module")
def mm():
    mmseg, MODELS, Config = import_mmseg()
    cfg, _ = hr18_model_config(mmseg, Config)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    randomise_bn(model, 1, spread=0.1, conv_bias=True)
    with torch.no_grad():                          # sharper attention than the random init gives
        for blk in (model.decode_head[1].object_context_block,):
            for proj in (blk.query_project, blk.key_project):
                proj[0].conv.weight.mul_(3)
    return model.eval()


@pytest.fixture(scope="module")
def mm_sync(mm):
    sync = nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(mm)).eval()
    assert sum(isinstance(m, nn.SyncBatchNorm) for m in sync.modules()) > 100
    return sync


def _x(seed: int = 1) -> torch.Tensor:
    return torch.randn(*IMAGE, generator=torch.Generator().manual_seed(seed))


def _dirichlet(shape, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).dirichlet(np.full(shape[-1], 0.3), size=shape[:-1])).float()


@pytest.mark.parametrize("which", ["BN", "SyncBN"])
def test_mmseg_ocrhead_rerun_head_equals_a_hooked_full_forward(mm, mm_sync, which) -> None:
    model = mm if which == "BN" else mm_sync
    x = _x()
    _, cache = run_with_cache(model, x)
    parts = ocr_parts(model)
    assert parts.layout == "mmseg" and parts.cls is model.decode_head[1].conv_seg and parts.key_channels == 256
    with torch.no_grad():
        own = model(x, mode="tensor")                                            # 1 x 19 x 16 x 32
    assert (rerun_head(model, cache) - own).abs().max() <= 1e-5
    sim = _dirichlet(cache.sim_map.shape, 2)                                     # 1 x HW x K
    want = hooked_forward(model, x, "mmseg", sim=sim)
    assert (want - own).abs().max() > 0.1                                        # the edit matters
    assert (rerun_head(model, cache, sim_map=sim) - want).abs().max() <= 1e-5
    rw = torch.softmax(3 * torch.randn(1, K, 16 * 32, generator=torch.Generator().manual_seed(3)), -1)
    rw = rw.reshape(1, K, 16, 32)                                                # 1 x K x h x w
    want = hooked_forward(model, x, "mmseg", region_weights=rw)
    assert (want - own).abs().max() > 0.1
    assert (rerun_head(model, cache, region_weights=rw) - want).abs().max() <= 1e-5


def test_mmseg_ocrhead_region_influence_equals_hooked_forwards(mm) -> None:
    x = _x(4)
    _, cache = run_with_cache(mm, x)
    cells = [(0, 0, 0), (0, 7, 19), (0, 15, 31)]
    inf = region_influence(mm, cache, cells=cells)                              # 3 x K
    sim = cache.sim_map
    base = hooked_forward(mm, x, "mmseg")[0].flatten(1)                          # K x HW
    for i, (_, r, c) in enumerate(cells):
        p = r * 32 + c
        cls = int(base[:, p].argmax())
        for k in range(K):
            edit = sim.clone()
            edit[0, p] = dropped_rows(sim[0, p:p + 1])[0, 1 + k]
            dropped = hooked_forward(mm, x, "mmseg", sim=edit)[0].flatten(1)[cls, p]
            assert abs(float(inf[i, k]) - float(base[cls, p] - dropped)) <= 1e-5
    assert float(inf.abs().max()) > 0.01


def test_mmseg_ocrhead_kernel_counterfactuals_with_sync_batchnorm(mm_sync) -> None:
    x = _x(5)
    _, cache = run_with_cache(mm_sync, x)
    ph = pixel_head(mm_sync, cache)
    assert ph is not None
    sim = _dirichlet(cache.sim_map.shape, 6)
    want = hooked_forward(mm_sync, x, "mmseg", sim=sim)[0].flatten(1).double()   # K x HW
    for p in (0, 200, 511):
        np.testing.assert_allclose(ph.logits(sim[0, p].numpy(), p), want[:, p].numpy(), atol=1e-5, rtol=0)
    # the kernel side of the explorer: the whole image under "drop region k" equals the hooked forward's classes
    kcf = KernelCounterfactuals(ph, cache.sim_map[0].numpy(), (16, 32))
    k = int(cache.sim_map[0, 100].argmax())
    whole, pred = kcf.whole({"key": 1, "cell": [3, 4], "dropped": [k], "gain": None})
    edit = cache.sim_map.clone()
    edit[0] = dropped_rows(edit[0])[:, 1 + k]
    want_pred = hooked_forward(mm_sync, x, "mmseg", sim=edit)[0].argmax(0).flatten().numpy()
    assert (np.asarray(pred).ravel() == want_pred).mean() >= 0.999             # float32 ties only


def test_mmseg_ocrhead_attention_report_and_error_blame_equal_ocrviz_hrnet(mm, tmp_path) -> None:
    path = tmp_path / "ocrnet_hr18.pth"
    torch.save({"meta": {"dataset_meta": {"classes": [f"c{i}" for i in range(K)]}}, "state_dict": mm.state_dict()},
               path)
    ours = ocrviz.from_checkpoint(path)
    rng = np.random.default_rng(7)
    images = [rng.integers(0, 256, (64, 128, 3), dtype=np.uint8) for _ in range(2)]
    labels = [rng.integers(0, K, (64, 128)).astype(np.uint8) for _ in range(2)]
    theirs_r = attention_report(mm, images, labels, progress=False)
    ours_r = attention_report(ours, images, labels, progress=False)
    for field in ("effective_regions", "kl_from_uniform", "top_is_pred", "top_is_soft", "top_is_true", "miou",
                  "miou_uniform_sim", "miou_onehot_sim", "miou_shuffled_sim"):
        a, b = getattr(theirs_r, field), getattr(ours_r, field)
        assert a is not None and abs(a - b) <= 1e-4, (field, a, b)
    assert theirs_r.n_cells == ours_r.n_cells == 2 * 16 * 32
    theirs_b, ours_b = error_blame(mm, images[0], labels[0]), error_blame(ours, images[0], labels[0])
    assert (theirs_b.prediction == ours_b.prediction).all()
    assert (theirs_b.category == ours_b.category).mean() >= 0.999
    assert (theirs_b.category >= 0).sum() > 100                                  # there are errors to blame


def test_explorer_on_mmseg_keeps_counterfactuals_and_its_own_prediction(mm_sync) -> None:
    """Explorer(MMSeg's model with SyncBatchNorm): counterfactuals on, nothing unavailable, and the prediction is
    MMSeg's own (resized with its align_corners=False): agreement 1.0."""
    from ocrviz import Explorer
    from ocrviz.data.dataset import normalize

    image = np.random.default_rng(8).integers(0, 256, (64, 128, 3), dtype=np.uint8)
    ex = Explorer(mm_sync, image)
    assert ex.counterfactuals == "browser" and ex.unavailable == {}
    with torch.no_grad():
        own = mm_sync.encode_decode(normalize(image)[None], [dict(img_shape=(64, 128))]).argmax(1)[0].numpy()
    assert mm_sync.align_corners is False
    assert (ex.data.pred == own).mean() == 1.0
