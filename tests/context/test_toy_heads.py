"""ocrviz.context_maps on the ToyCity context heads (ocrviz.models: sa, da, cc, psp).

Each map is checked against a recomputation written here from the captured
tensors (a dense softmax, plain loops over a cross, plain loops over pooled
bins with the bilinear formula written out), never against the producer's own
helpers; the recomputed attention is itself checked against the head's own
context tensor, so the reference is the module's arithmetic.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ocrviz
from ocrviz.capture import CaptureMismatchError
from ocrviz.context import cell_classes, context_maps, criss_cross
from ocrviz.models import create_model

H, W = 48, 80                         # 6 x 10 cells at stride 8


def _model(arch: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    m = create_model(arch, num_classes=5).eval()
    with torch.no_grad():                                    # peaked rows: a wrong cell cannot hide
        for name, p in m.head.named_parameters():
            if ("query" in name or "key" in name) and name.endswith("weight"):
                p.mul_(8)
            if name.endswith("gamma"):
                p.fill_(0.7)
    return m


def _run(arch: str, seed: int = 0):
    m = _model(arch, seed)
    x = torch.randn(2, 3, H, W, generator=torch.Generator().manual_seed(seed + 1))
    logits, cache = ocrviz.run_with_cache(m, x)
    return m, cache


PIXELS = [(0, 0), (21, 45), (47, 79), (30, 8)]


# ---------------------------------------------------------------------------- self-attention, DANet PAM
@pytest.mark.parametrize("arch,prefix,scale", [("sa", "", None), ("da", "pam_", 1.0)])
def test_pixel_attention_rows_are_the_dense_softmax(arch: str, prefix: str, scale: float | None) -> None:
    m, cache = _run(arch)
    scale = m.head.scale if scale is None else scale          # SA: 1/sqrt(Ck); DANet's PAM has none
    for b in (0, 1):
        q = cache[f"head.hook_{prefix}query"][b].double()    # HW x Ck
        k = cache[f"head.hook_{prefix}key"][b].double()      # Ck x HW
        v = cache[f"head.hook_{prefix}value"][b].double()    # HW x C
        att = torch.softmax(scale * q @ k, dim=-1)           # HW x HW, dense, written here
        ctx = cache[f"head.hook_{prefix}context"][b].double().flatten(1)   # C x HW
        np.testing.assert_allclose((att @ v).T.numpy(), ctx.numpy(), atol=1e-4)   # the reference is the head's
        for y, x in PIXELS:
            maps = context_maps(cache, (y, x), batch_index=b)
            assert len(maps) == 1, [mm.site for mm in maps]  # one site; DANet's CAM gives none
            (mm,) = maps
            r, c = y * 6 // H, x * 10 // W
            assert mm.exact and mm.convention == "" and mm.kind == "self_attention" and mm.cell == (r, c)
            np.testing.assert_allclose(mm.weights.ravel(), att[r * 10 + c].numpy(), atol=1e-6)
            assert abs(mm.weights.sum() + mm.off_grid - 1) < 1e-9 and mm.off_grid == 0
    assert att.max() > 5 / att.shape[1]                      # rows are peaked, not uniform
    if arch == "da":
        assert "CAM" in mm.extra["note"] and "no spatial context map" in mm.extra["note"]


def test_a_tampered_context_refuses_the_row() -> None:
    m, cache = _run("sa")
    cache._store["head.hook_context"] = cache["head.hook_context"] + 1.0
    with pytest.raises(CaptureMismatchError):
        context_maps(cache, (21, 45))


# ---------------------------------------------------------------------------- CCNet
def _cross_by_loops(q: torch.Tensor, k: torch.Tensor, i: int, j: int) -> np.ndarray:
    """h x w weights of pixel (i, j): one softmax over its column (without itself) and its row."""
    _, h, w = q.shape
    cells, energies = [], []
    for ii in range(h):
        if ii != i:
            cells.append((ii, j))
            energies.append(float(q[:, i, j] @ k[:, ii, j]))
    for jj in range(w):
        cells.append((i, jj))
        energies.append(float(q[:, i, j] @ k[:, i, jj]))
    top = max(energies)
    e = [math.exp(v - top) for v in energies]
    out = np.zeros((h, w))
    for (a, bb), v in zip(cells, e):
        out[a, bb] += v / sum(e)
    return out


def test_criss_cross_one_exact_map_per_pass_in_forward_order() -> None:
    m, cache = _run("cc")
    b = 1
    for y, x in PIXELS:
        maps = context_maps(cache, (y, x), batch_index=b)
        assert [mm.site for mm in maps] == ["head.passes.0", "head.passes.1"]
        r, c = y * 6 // H, x * 10 // W
        for p, mm in enumerate(maps):
            q = cache[f"head.passes.{p}.hook_query"][b].double()
            k = cache[f"head.passes.{p}.hook_key"][b].double()
            v = cache[f"head.passes.{p}.hook_value"][b].double()
            ref = _cross_by_loops(q, k, r, c)
            assert mm.exact and mm.extra["criss_cross_pass"] == p and abs(mm.weights.sum() - 1) < 1e-9
            np.testing.assert_allclose(mm.weights, ref, atol=1e-6)
            np.testing.assert_allclose((v * torch.from_numpy(ref)).sum((1, 2)).numpy(),     # the head's own context
                                       cache[f"head.passes.{p}.hook_context"][b, :, r, c].double().numpy(),
                                       atol=1e-4)
    assert maps[0].weights.max() > 0.2                       # peaked crosses


def test_criss_cross_rollout_is_the_product_of_the_passes() -> None:
    m, cache = _run("cc")
    b, (r, c) = 0, (2, 7)
    passes = []
    for p in range(2):
        q = cache[f"head.passes.{p}.hook_query"][b].double()
        k = cache[f"head.passes.{p}.hook_key"][b].double()
        passes.append(np.stack([_cross_by_loops(q, k, i, j).ravel() for i in range(6) for j in range(10)]))
    ref = (passes[1] @ passes[0])[r * 10 + c]                # A2 . A1, row of the cell
    got = criss_cross.rollout(cache, (r, c), b)
    assert not got.exact and "rollout" in got.convention
    np.testing.assert_allclose(got.weights.ravel(), ref, atol=1e-9)
    assert (got.weights > 0).all()                           # two crosses reach every cell


# ---------------------------------------------------------------------------- PSP
def _bilinear_1d(i: int, n_out: int, n_in: int) -> dict[int, float]:
    """align_corners=False weights of output index i over n_in source indices (PyTorch's formula)."""
    src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
    i0 = min(int(math.floor(src)), n_in - 1)
    i1 = min(i0 + 1, n_in - 1)
    lam = src - i0
    out: dict[int, float] = {}
    out[i0] = out.get(i0, 0.0) + 1 - lam
    out[i1] = out.get(i1, 0.0) + lam
    return out


def _psp_by_loops(bins: tuple[int, ...], h: int, w: int, r: int, c: int) -> np.ndarray:
    out = np.zeros((h, w))
    for s in bins:
        wy, wx = _bilinear_1d(r, h, s), _bilinear_1d(c, w, s)
        for u, a in wy.items():
            for v, bb in wx.items():
                r0, r1 = u * h // s, -(-(u + 1) * h // s)     # adaptive_avg_pool2d's bin
                c0, c1 = v * w // s, -(-(v + 1) * w // s)
                out[r0:r1, c0:c1] += a * bb / ((r1 - r0) * (c1 - c0)) / len(bins)
    return out


def test_psp_map_is_the_bin_geometry_with_equal_scales() -> None:
    m, cache = _run("psp")
    for y, x in PIXELS:
        (mm,) = context_maps(cache, (y, x), batch_index=1)
        r, c = y * 6 // H, x * 10 // W
        assert mm.kind == "pooling_bins" and not mm.exact and "weighted equally" in mm.convention
        np.testing.assert_allclose(mm.weights, _psp_by_loops((1, 2, 3, 6), 6, 10, r, c), atol=1e-12)
        assert abs(mm.weights.sum() - 1) < 1e-9
        assert len(mm.sources) == 1 + 4 + 9 + 36 and abs(mm.source_weights.sum() - 1) < 1e-9


def test_psp_bins_are_checked_against_the_captured_levels() -> None:
    m, cache = _run("psp")
    cache._store["head.hook_pooled_3"] = cache["head.hook_pooled_3"].flip(-1)
    with pytest.raises(CaptureMismatchError):
        context_maps(cache, (21, 45))


# ---------------------------------------------------------------------------- cell classes
@pytest.mark.parametrize("arch", ["sa", "da", "cc", "psp"])
def test_cell_classes_are_the_heads_own_logits(arch: str) -> None:
    m, cache = _run(arch)
    with torch.no_grad():
        _, main = m.head(cache["hook_features"][1:2])
    np.testing.assert_array_equal(cell_classes(cache, batch_index=1), main[0].argmax(0).numpy())


# ---------------------------------------------------------------------------- consumers on toycity-sa
def _sa_attention(cache, b: int = 0) -> np.ndarray:
    """HW x HW: the dense softmax of the captured factors (toycity-sa's logit scale 1/sqrt(Ck))."""
    q, k = cache["head.hook_query"][b].double(), cache["head.hook_key"][b].double()
    return torch.softmax(q @ k / math.sqrt(q.shape[1]), -1).numpy()


def _block_fractions(ids: np.ndarray, values: list[int], s: int = 8) -> np.ndarray:
    """len(values) x h x w: the share of each s x s block's pixels equal to each value (plain loops)."""
    h, w = ids.shape[0] // s, ids.shape[1] // s
    out = np.zeros((len(values), h, w))
    for o, val in enumerate(values):
        for i in range(h):
            for j in range(w):
                out[o, i, j] = (ids[i * s:(i + 1) * s, j * s:(j + 1) * s] == val).mean()
    return out


@pytest.fixture(scope="module")
def sa_scenes():
    from ocrviz.data.dataset import normalize
    from ocrviz.data.toycity import make_scene
    model = ocrviz.load_model("toycity-sa")
    scenes = [make_scene(seed=s) for s in (900_001, 900_002)]
    caches = [ocrviz.run_with_cache(model, normalize(sc.image)[None])[1] for sc in scenes]
    return model, scenes, caches


def test_own_object_share_on_toycity_sa_is_the_loop_over_cells(sa_scenes) -> None:
    from ocrviz.analysis.context_share import own_object_share
    _, scenes, caches = sa_scenes
    sc, cache = scenes[0], caches[0]
    ids = np.where(sc.instances > 0, sc.instances.astype(np.int64), -(sc.labels.astype(np.int64) + 1))
    ids = np.where(sc.labels == 255, -10**6, ids)                  # things by instance, stuff by class
    values = sorted(np.unique(ids).tolist())
    frac = _block_fractions(ids, values)                            # O x 32 x 64
    att = _sa_attention(cache)
    ref = np.zeros((32, 64))
    for i in range(32):
        for j in range(64):
            own = values.index(ids[i * 8 + 4, j * 8 + 4])          # the object under the centre pixel
            ref[i, j] = att[i * 64 + j] @ frac[own].ravel()                # sum over the 2048 cells q
    got = own_object_share(cache, sc.labels, sc.instances, stride=8)
    np.testing.assert_allclose(got, ref, atol=1e-6)              # float32 logits, two matmul orders
    assert 0.05 < ref.mean() < 0.95 and ref.std() > 0.02           # a share that varies: not a constant


def test_context_flow_on_toycity_sa_is_the_loop_over_cells(sa_scenes) -> None:
    from ocrviz.analysis import context_flow
    model, scenes, caches = sa_scenes
    k = model.num_classes
    mass = np.zeros((k, k))
    for sc, cache in zip(scenes, caches):
        frac = _block_fractions(sc.labels.astype(np.int64), list(range(k)))   # K x 32 x 64
        att = _sa_attention(cache)
        for i in range(32):
            for j in range(64):
                t = int(sc.labels[i * 8 + 4, j * 8 + 4])
                if t != 255:
                    mass[t] += att[i * 64 + j] @ frac.reshape(k, -1).T
    with np.errstate(invalid="ignore"):
        ref = mass / mass.sum(1, keepdims=True)
    flow = context_flow(model, [sc.image for sc in scenes], [sc.labels for sc in scenes])
    assert flow.head == "self_attention at head" and flow.ocr_influence is None and flow.aspp_mass is None
    np.testing.assert_allclose(flow.ocr_mass, ref, atol=1e-9)
    assert flow.to_dict()["head"] == "self_attention at head" and flow.to_dict()["ocr_influence"] is None


def test_conventions_are_refused_by_the_dataset_analyses() -> None:
    from ocrviz.analysis.context_share import own_object_share
    m, cache = _run("psp")
    labels = np.zeros((H, W), np.int64)
    with pytest.raises(ValueError, match="convention"):
        own_object_share(cache, labels, stride=8, batch_index=0)
    m, cache = _run("cc")
    with pytest.raises(ValueError, match="site="):
        own_object_share(cache, labels, stride=8)
    assert own_object_share(cache, labels, stride=8, site="head.passes.1").shape == (6, 10)


def test_report_draws_the_context_flow_of_a_self_attention_model(sa_scenes) -> None:
    from ocrviz.data.dataset import ToyCityDataset
    from ocrviz.report_page import report_html
    from ocrviz.report_run import run_report
    model, scenes, _ = sa_scenes
    seeds = (900_001, 900_002)
    rep = run_report([("toycity-sa", model)], ToyCityDataset(seeds), lambda: ((s.image, s.labels) for s in scenes),
                     ["a", "b"], progress=False, n_boot=20)
    (entry,) = rep["models"]
    flow = entry["analyses"]["context_flow"]["dict"]
    assert "attention report skipped" in entry["skipped"] and "context flow drawn" in entry["skipped"]
    assert flow["head"] == "self_attention at head" and flow["ocr_influence"] is None
    html = report_html("t", rep)
    assert "self_attention at head context mass" in html and "OCR influence" not in html


@pytest.mark.parametrize("arch,site", [("cc", "head.passes.1"), ("psp", "head"), ("sa", "head"), ("da", "head")])
def test_masses_are_every_cells_map_on_each_cell_map(arch: str, site: str) -> None:
    from ocrviz.context import context_masses
    m, cache = _run(arch)
    frac = np.random.default_rng(0).random((3, 6, 10))
    ((s, got),) = context_masses(cache, frac, batch_index=1, path=site)
    maps = [context_maps(cache, (i * 8, j * 8), batch_index=1) for i in range(6) for j in range(10)]
    ref = np.stack([[mm for mm in ms if mm.site == site][0].weights.ravel() for ms in maps]) @ frac.reshape(3, -1).T
    np.testing.assert_allclose(got, ref, atol=1e-6)              # float32 logits, two matmul orders


def test_exact_sites_name_the_maps_the_dataset_analyses_may_score() -> None:
    from ocrviz.context import exact_sites
    assert [s.path for _, s in exact_sites(_run("cc")[1])] == ["head.passes.0", "head.passes.1"]
    assert [s.path for _, s in exact_sites(_run("da")[1])] == ["head"]
    assert exact_sites(_run("psp")[1]) == []
