"""The ToyCity context heads (sa, psp, da, cc) and the models trained with ``ocrviz.train_heads``.

* Each head's context block equals the upstream module it re-implements, with
  the same weights loaded: mmcv's ``NonLocal2d`` (sa), MMSeg's ``PAM`` / ``CAM``
  (da), mmcv's ``CrissCrossAttention`` run twice (cc), MMSeg's ``PPM`` (psp).
* The recipes the docstrings give a context producer (a pixel's exact row from
  the hooked factors) reproduce the hooked context, computed here by plain loops.
* ``create_model`` -> ``save_checkpoint`` -> ``from_checkpoint`` round trip.
* Every shipped head model: re-evaluated here with a plain forward and a
  confusion matrix written in this file, against the subset its card records;
  its backbone is bit for bit the shipped FCN's (frozen), as the card says.
"""
from __future__ import annotations

import hashlib
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ocrviz
from ocrviz.checkpoints import save_checkpoint
from ocrviz.models import create_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interop"))
from mmseg_env import import_mmseg  # noqa: E402

HEAD_ARCHS = ("sa", "psp", "da", "cc")
CF, C, CK, K, B, h, w = 16, 12, 4, 5, 2, 6, 10


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    """Random weights, BN statistics and residual scales (gammas start at 0 otherwise)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.dtype.is_floating_point:
                t.copy_(torch.rand(t.shape, generator=g) + 0.5 if name.endswith("running_var")
                        else 0.5 * torch.randn(t.shape, generator=g))


def _input_of(module: torch.nn.Module, run) -> torch.Tensor:
    seen = []
    handle = module.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    try:
        run()
    finally:
        handle.remove()
    assert len(seen) == 1
    return seen[0]


def _hooks(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    seen: dict[str, torch.Tensor] = {}
    handles = [m.register_forward_hook(lambda mod, i, o, n=n: seen.__setitem__(n, o.detach().clone()))
               for n, m in model.named_modules() if n.rsplit(".", 1)[-1].startswith("hook_")]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hd in handles:
            hd.remove()
    return seen


@pytest.fixture(scope="module")
def upstream():
    import_mmseg()
    from mmcv.cnn import NonLocal2d
    from mmcv.ops import CrissCrossAttention
    from mmseg.models.decode_heads.da_head import CAM, PAM
    from mmseg.models.decode_heads.psp_head import PPM
    return {"NonLocal2d": NonLocal2d, "CrissCrossAttention": CrissCrossAttention, "PAM": PAM, "CAM": CAM,
            "PPM": PPM}


def _head(arch: str) -> torch.nn.Module:
    kw = {"sa": {"key_channels": CK}, "psp": {}, "da": {"key_channels": CK}, "cc": {"key_channels": CK}}[arch]
    model = create_model(arch, num_classes=K, widths=(8, 8, 8, CF), channels=C, **kw)
    _randomise(model)
    return model.eval()


# ---- each context block equals the upstream module ----------------------------------------------

def test_sa_block_is_mmcv_nonlocal2d(upstream):
    model = _head("sa")
    head = model.head
    nl = upstream["NonLocal2d"](C, reduction=C // CK, use_scale=True, norm_cfg=dict(type="BN"),
                                mode="embedded_gaussian").eval()
    sd = head.state_dict()
    nl.load_state_dict({
        "g.conv.weight": sd["value.weight"], "g.conv.bias": sd["value.bias"],
        "theta.conv.weight": sd["query.weight"], "theta.conv.bias": sd["query.bias"],
        "phi.conv.weight": sd["key.weight"], "phi.conv.bias": sd["key.bias"],
        "conv_out.conv.weight": sd["out.0.weight"],
        **{f"conv_out.bn.{k}": sd[f"out.1.{k}"] for k in ("weight", "bias", "running_mean", "running_var",
                                                          "num_batches_tracked")}})
    feats = torch.randn(B, CF, h, w)
    with torch.no_grad():
        fused_in = _input_of(head.fuse, lambda: head(feats))                  # [feats, y]
        want = nl(head.pre(feats))
    assert torch.allclose(fused_in[:, CF:], want, atol=1e-5), (fused_in[:, CF:] - want).abs().max()


def test_da_branches_are_mmseg_pam_and_cam(upstream):
    model = _head("da")
    head = model.head
    pam = upstream["PAM"](C, CK).eval()
    sd = head.state_dict()
    pam.load_state_dict({"query_project.weight": sd["pam_query.weight"], "query_project.bias": sd["pam_query.bias"],
                         "key_project.weight": sd["pam_key.weight"], "key_project.bias": sd["pam_key.bias"],
                         "value_project.weight": sd["pam_value.weight"],
                         "value_project.bias": sd["pam_value.bias"], "gamma.scale": sd["pam_gamma"]})
    cam = upstream["CAM"]().eval()
    cam.load_state_dict({"gamma.scale": sd["cam_gamma"]})
    feats = torch.randn(B, CF, h, w)
    with torch.no_grad():
        pam_in = _input_of(head.pam_out, lambda: head(feats))
        cam_in = _input_of(head.cam_out, lambda: head(feats))
        want_pam, want_cam = pam(head.pam_in(feats)), cam(head.cam_in(feats))
    assert float(sd["pam_gamma"]) != 0 and float(sd["cam_gamma"]) != 0
    assert torch.allclose(pam_in, want_pam, atol=1e-5), (pam_in - want_pam).abs().max()
    assert torch.allclose(cam_in, want_cam, rtol=1e-4, atol=1e-4), (cam_in - want_cam).abs().max()


def test_cc_two_passes_are_mmcv_criss_cross_attention_twice(upstream):
    cca = upstream["CrissCrossAttention"](C).eval()            # mmcv's Ck is C // 8
    model = create_model("cc", num_classes=K, widths=(8, 8, 8, CF), channels=C, key_channels=C // 8)
    _randomise(model)
    head = model.eval().head
    sd = head.state_dict()
    cca.load_state_dict({f"{n}_conv.{p}": sd[f"cca.{n}.{p}"] for n in ("query", "key", "value")
                         for p in ("weight", "bias")} | {"gamma.scale": sd["cca.gamma"]})
    feats = torch.randn(B, CF, h, w)
    with torch.no_grad():
        post_in = _input_of(head.post, lambda: head(feats))
        want = cca(cca(head.pre(feats)))
    assert float(sd["cca.gamma"]) != 0
    assert torch.allclose(post_in, want, atol=1e-5), (post_in - want).abs().max()


def test_psp_levels_are_mmseg_ppm(upstream):
    model = _head("psp")
    head = model.head
    ppm = upstream["PPM"]((1, 2, 3, 6), CF, C, conv_cfg=None, norm_cfg=dict(type="BN"),
                          act_cfg=dict(type="ReLU"), align_corners=False).eval()
    sd = head.state_dict()
    ppm.load_state_dict({f"{i}.1.{'conv' if p == '0' else 'bn'}.{k}": sd[f"levels.{i}.{p}.{k}"]
                         for i in range(4) for p, ks in (("0", ("weight",)),
                                                          ("1", ("weight", "bias", "running_mean", "running_var",
                                                                 "num_batches_tracked"))) for k in ks})
    feats = torch.randn(B, CF, 12, 20)            # 12 x 20: bins 3 and 6 divide, 12 / 6 x 20 / 6 does not
    with torch.no_grad():
        bottleneck_in = _input_of(head.bottleneck, lambda: head(feats))
        want = torch.cat([feats, *ppm(feats)], 1)
    assert torch.allclose(bottleneck_in, want, atol=1e-5), (bottleneck_in - want).abs().max()


# ---- the producer recipes of the docstrings, by plain loops -------------------------------------

def _spread(module: torch.nn.Module, *names: str) -> None:
    """Shrink query / key weights so that the rows are spread (a one-hot row would hide a wrong recipe)."""
    with torch.no_grad():
        for n in names:
            module.get_submodule(n).weight.mul_(0.1)


def test_sa_row_recipe_reproduces_the_context():
    head = _head("sa").head
    _spread(head, "query", "key")
    cache = _hooks(head, torch.randn(B, CF, h, w))
    q, k, v, ctx = (cache[f"hook_{n}"] for n in ("query", "key", "value", "context"))
    for b, i, j in [(0, 0, 0), (1, 3, 7), (1, h - 1, w - 1)]:
        p = i * w + j
        logits = [sum(float(q[b, p, c]) * float(k[b, c, s]) for c in range(CK)) / math.sqrt(CK) for s in range(h * w)]
        top = max(logits)
        e = [math.exp(x - top) for x in logits]
        row = [x / sum(e) for x in e]
        got = [sum(row[s] * float(v[b, s, c]) for s in range(h * w)) for c in range(CK)]
        assert abs(sum(row) - 1) < 1e-9 and max(row) < 0.5
        assert np.allclose(got, ctx[b, :, i, j].numpy(), atol=1e-5)


def test_da_pam_row_recipe_reproduces_the_context():
    head = _head("da").head
    _spread(head, "pam_query", "pam_key")
    cache = _hooks(head, torch.randn(B, CF, h, w))
    q, k, v, ctx = (cache[f"hook_pam_{n}"] for n in ("query", "key", "value", "context"))
    b, i, j = 1, 2, 5
    p = i * w + j
    row = torch.softmax(torch.tensor([float(q[b, p] @ k[b, :, s]) for s in range(h * w)], dtype=torch.float64), 0)
    got = sum(row[s] * v[b, s].double() for s in range(h * w))
    assert torch.allclose(got.float(), ctx[b, :, i, j], atol=1e-5) and float(row.max()) < 0.5
    assert cache["hook_cam_attention"].shape == (B, C, C)


def test_cc_cross_recipe_reproduces_each_pass():
    head = _head("cc").head
    _spread(head, "cca.query", "cca.key")
    cache = _hooks(head, torch.randn(B, CF, h, w))
    for r in range(2):
        q, k, v, ctx = (cache[f"passes.{r}.hook_{n}"] for n in ("query", "key", "value", "context"))
        for b, i, j in [(0, 0, 0), (1, 4, 3)]:
            cells = [(ii, j) for ii in range(h) if ii != i] + [(i, jj) for jj in range(w)]   # itself once
            energy = torch.tensor([float(q[b, :, i, j] @ k[b, :, a, c]) for a, c in cells], dtype=torch.float64)
            weights = torch.softmax(energy, 0)
            got = sum(wt * v[b, :, a, c].double() for wt, (a, c) in zip(weights, cells))
            assert len(cells) == h + w - 1 and float(weights.max()) < 0.5
            assert torch.allclose(got.float(), ctx[b, :, i, j], atol=1e-5), (r, b, i, j)
    assert not torch.equal(cache["passes.0.hook_query"], cache["passes.1.hook_query"])


def test_psp_bin_footprints_are_floor_ceil_cells():
    feats = torch.randn(1, 3, 32, 64)
    for bins in (1, 2, 3, 6):
        pooled = F.adaptive_avg_pool2d(feats, bins)
        for u in range(bins):
            for v in range(bins):
                r0, r1 = (u * 32) // bins, -(-((u + 1) * 32) // bins)
                c0, c1 = (v * 64) // bins, -(-((v + 1) * 64) // bins)
                assert torch.allclose(pooled[0, :, u, v], feats[0, :, r0:r1, c0:c1].mean((1, 2)), atol=1e-6)


# ---- checkpoints round trip ---------------------------------------------------------------------

@pytest.mark.parametrize("arch", HEAD_ARCHS)
def test_create_model_round_trips_through_save_and_from_checkpoint(arch, tmp_path):
    model = create_model(arch, num_classes=K, dilated=False)
    _randomise(model, seed=3)
    model.eval()
    path = save_checkpoint(model, tmp_path / f"{arch}.safetensors")
    back = ocrviz.from_checkpoint(path)
    assert type(back.head) is type(model.head) and back.arch == arch and back.model_kwargs == {"dilated": False}
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        assert torch.equal(back(x), model(x))


# ---- the shipped head models, re-evaluated ------------------------------------------------------

def _shipped_heads() -> list[str]:
    from ocrviz.zoo import HEAD_MODELS
    return list(HEAD_MODELS)


@pytest.fixture(scope="module")
def check_scenes():
    """The first validation scenes, rendered here (image, labels)."""
    from ocrviz.data.dataset import ToyCityDataset, normalize, val_split
    from ocrviz.train_heads import CHECK_IMAGES
    ds = ToyCityDataset(val_split(CHECK_IMAGES), height=256, width=512, cue_free=False)
    rows = [ds.render(i) for i in range(len(ds))]
    return [(normalize(r["image"])[None], r["labels"]) for r in rows]


@pytest.mark.parametrize("name", _shipped_heads())
def test_shipped_head_model_reevaluates_to_its_card(name, check_scenes):
    """Plain forward + a confusion matrix written here, against the card's recorded subset.

    Tolerance: at most 0.05 % of the subset's pixels may land in another cell
    (thread count and batch size change float sums), and mIoU within 0.002."""
    torch.set_num_threads(1)
    model = ocrviz.load_model(name)
    card = model.card
    k = card["num_classes"]
    conf = np.zeros((k, k), dtype=np.int64)
    with torch.no_grad():
        for image, labels in check_scenes:
            pred = model(image)[0].argmax(0).numpy()
            conf += np.bincount(labels.astype(np.int64).ravel() * k + pred.ravel(), minlength=k * k).reshape(k, k)
    recorded = np.asarray(card["check_subset"]["confusion"])
    assert conf.sum() == recorded.sum() == len(check_scenes) * 256 * 512
    assert np.abs(conf - recorded).sum() <= 0.0005 * conf.sum(), np.abs(conf - recorded).sum()
    tp = np.diag(conf).astype(float)
    union = conf.sum(0) + conf.sum(1) - tp
    miou = float(np.mean(tp[union > 0] / union[union > 0]))
    assert abs(miou - card["check_subset"]["miou"]) <= 0.002, (miou, card["check_subset"]["miou"])
    assert card["metrics"]["miou"] >= 0.6, "a head far below the baseline: retrain, do not ship"
    assert card["params"] == sum(p.numel() for p in model.parameters())
    assert card["wall_time_s"] > 0 and card["machine"]["cpu_count"] >= 1


@pytest.mark.parametrize("name", _shipped_heads())
def test_shipped_head_model_keeps_the_frozen_fcn_backbone(name):
    model = ocrviz.load_model(name)
    fcn = ocrviz.load_model("toycity-fcn")
    card = model.card
    fcn_file = Path(ocrviz.zoo.data_dir()) / "checkpoints" / "toycity-fcn.safetensors"
    assert card["backbone"]["sha256"] == hashlib.sha256(fcn_file.read_bytes()).hexdigest()
    ours, theirs = model.backbone.state_dict(), fcn.backbone.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[n], theirs[n]) for n in ours)


@pytest.mark.parametrize("arch, names", [
    ("sa", ["head.hook_query", "head.hook_key", "head.hook_value", "head.hook_context"]),
    ("psp", ["head.hook_pooled_1", "head.hook_pooled_2", "head.hook_pooled_3", "head.hook_pooled_6",
             "head.hook_bottleneck"]),
    ("da", ["head.hook_pam_query", "head.hook_pam_key", "head.hook_pam_value", "head.hook_pam_context",
            "head.hook_cam_attention"]),
    ("cc", [f"head.passes.{r}.hook_{n}" for r in (0, 1) for n in ("query", "key", "value", "context")]),
])
def test_capture_sees_every_factor_once_in_forward_order(arch, names):
    """run_with_cache on each head: the documented hooks, each fired once (CC: one set per pass), in
    forward order, and no HW x HW tensor among them."""
    model = create_model(arch, num_classes=K, dilated=False).eval()
    _, cache = ocrviz.run_with_cache(model, torch.randn(1, 3, 64, 128))
    assert cache.names() == ["hook_features", *names, "hook_logits"]
    hw = 8 * 16
    assert all(sorted(cache[n].shape[-2:]) != [hw, hw] for n in names)


def test_head_models_share_everything_but_the_head():
    """'Everything else equal': one backbone file, one config (less arch and out), one feature set."""
    from ocrviz.zoo import model_card
    cards = {n: model_card(n) for n in _shipped_heads()}
    configs = {n: {k: v for k, v in c["config"].items() if k not in ("arch", "out")} for n, c in cards.items()}
    first = next(iter(configs.values()))
    assert all(cfg == first for cfg in configs.values()), configs
    assert len({c["backbone"]["sha256"] for c in cards.values()}) == 1
    assert len({tuple(c["features"]["seeds"]) for c in cards.values()}) == 1
    assert sorted(c["arch"] for c in cards.values()) == sorted(["sa", "psp", "da", "cc", "ocrnet", "aspp", "fcn"])
    for n, c in cards.items():
        assert c["command"].startswith(f"python -m ocrviz.train_heads --arch {c['arch']} ") and n in c["command"]


def test_train_head_trains_only_the_head_and_reuses_the_features(tmp_path):
    """A 2-step run: the backbone stays bit for bit the FCN's, the head moves, the card records the
    recipe, and a second run reads the cached features instead of rendering."""
    from ocrviz.train_heads import HeadTrainConfig, train_head
    torch.set_num_threads(1)
    config = HeadTrainConfig(arch="psp", scenes=4, steps=2, batch_size=2, val_images=1, val_every=100,
                             cache_dir=str(tmp_path / "features"), out=str(tmp_path / "toycity-psp-tiny"))
    result = train_head(config, progress=False)
    fcn = ocrviz.load_model("toycity-fcn")
    ours, theirs = result.model.backbone.state_dict(), fcn.backbone.state_dict()
    assert all(torch.equal(ours[n], theirs[n]) for n in ours)
    fresh = create_model("psp", num_classes=9, dilated=False)
    assert not torch.equal(result.model.head.classifier.weight, fresh.head.classifier.weight)
    card = result.card
    assert card["features"]["from_cache"] is False and card["features"]["scenes"] == 4
    assert len(result.losses) == 2 and card["steps"] == 2 and card["check_subset"]["n_images"] == 8
    back = ocrviz.from_checkpoint(result.checkpoint)
    assert back.arch == "psp" and back.card["name"] == "toycity-psp-tiny"
    again = train_head(config, progress=False)
    assert again.card["features"]["from_cache"] is True
    assert again.losses == result.losses             # same seed, same cached features: the same run
