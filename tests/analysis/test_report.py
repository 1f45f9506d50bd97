"""attention_report: its mIoUs equal hooked full forwards scored independently; invariants hold."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ocrviz
from ocrviz.analysis import AttentionReport, attention_report
from ocrviz.data.dataset import normalize
from ocrviz.data.toycity import make_scene
from ocrviz.evaluate import confusion_matrix, metrics_from_confusion

from ocr_helpers import hooked_logits

H, W = 64, 128


@pytest.fixture(scope="module")
def model():
    return ocrviz.load_model("toycity-ocr")


@pytest.fixture(scope="module")
def scenes():
    return [make_scene(seed, H, W) for seed in (101, 102, 103)]


@pytest.fixture(scope="module")
def report(model, scenes) -> AttentionReport:
    # generators: the report must read each iterable once, in step
    return attention_report(model, (s.image for s in scenes), (s.labels for s in scenes), progress=False, seed=7)


def _brute_mious(model, scenes, seed: int) -> dict[str, float]:
    k = model.num_classes
    conf = {e: np.zeros((k, k), np.int64) for e in ("model", "uniform", "onehot", "shuffled")}
    for i, s in enumerate(scenes):
        x = normalize(s.image)[None]
        _, cache = ocrviz.run_with_cache(model, x)
        soft = cache.soft_regions[0].reshape(k, -1).argmax(0)              # HW
        hw = soft.numel()
        perm = np.random.default_rng([seed, i]).permutation(hw)
        edits = {"model": None,
                 "uniform": lambda out: torch.full_like(out, 1.0 / k),
                 "onehot": lambda out: torch.nn.functional.one_hot(soft, k).float()[None],
                 "shuffled": lambda out: out[:, torch.from_numpy(perm)]}
        for name, f in edits.items():
            logits = hooked_logits(model, x, {} if f is None else {"hook_sim_map": f})   # 1 x K x H x W
            conf[name] += confusion_matrix(logits.argmax(1)[0].numpy(), s.labels, k)
    return {e: metrics_from_confusion(c)["miou"] for e, c in conf.items()}


def test_mious_equal_hooked_forwards(model, scenes, report) -> None:
    want = _brute_mious(model, scenes, seed=7)
    assert report.miou == pytest.approx(want["model"], abs=1e-9)
    assert report.miou_uniform_sim == pytest.approx(want["uniform"], abs=1e-9)
    assert report.miou_onehot_sim == pytest.approx(want["onehot"], abs=1e-9)
    assert report.miou_shuffled_sim == pytest.approx(want["shuffled"], abs=1e-9)
    # the edits are not no-ops (otherwise the equalities above would be vacuous)
    assert len({round(v, 6) for v in want.values()}) >= 3


def test_miou_equals_evaluate(model, scenes, report) -> None:
    from ocrviz.evaluate import evaluate
    data = [{"image": normalize(s.image), "labels": torch.from_numpy(s.labels)} for s in scenes]
    assert report.miou == pytest.approx(evaluate(model, data, batch_size=1)["miou"], abs=1e-9)


def test_invariants_and_attention_stats(model, scenes, report) -> None:
    k = model.num_classes
    assert report.n_images == 3 and report.n_cells == 3 * (H // 8) * (W // 8)
    assert 1.0 <= report.effective_regions <= k
    assert 0.0 <= report.kl_from_uniform <= math.log(k) + 1e-9
    for f in (report.top_is_pred, report.top_is_soft, report.top_is_true):
        assert 0.0 <= f <= 1.0
    assert all(v is None or 0.0 <= v <= 1.0 + 1e-9 for v in report.region_on_class)
    assert len(report.region_on_class) == k
    # effective regions and KL recomputed in numpy from the sim maps
    sims = [ocrviz.run_with_cache(model, normalize(s.image)[None])[1].sim_map[0].double().numpy() for s in scenes]
    rows = np.concatenate(sims)                                            # N x K
    ent = -(rows * np.log(np.clip(rows, 1e-300, None))).sum(1)
    assert report.effective_regions == pytest.approx(np.exp(ent).mean(), rel=1e-6)
    assert report.kl_from_uniform == pytest.approx((np.log(k) - ent).mean(), rel=1e-5, abs=1e-9)


def test_without_labels_and_outputs(model, scenes) -> None:
    rep = attention_report(model, [scenes[0].image], progress=False)
    assert rep.miou is None and rep.top_is_true is None and rep.region_on_class is None
    assert rep.effective_regions >= 1
    d = rep.to_dict()
    assert d["miou_uniform_sim"] is None and d["n_images"] == 1
    assert "effective regions" in rep.to_markdown()
    fig = rep.plot()
    assert len(fig.data) == 2


def test_labels_running_out_and_unsupported_models(model, scenes) -> None:
    with pytest.raises(ValueError, match="labels ran out"):
        attention_report(model, [s.image for s in scenes], [scenes[0].labels], progress=False)
    aspp = ocrviz.create_model("aspp", num_classes=3, widths=(8, 8, 8, 8), channels=8).eval()
    with pytest.raises(ValueError, match="not supported"):
        attention_report(aspp, [scenes[0].image], progress=False)
