"""context_flow against loops over cells and pixels on a tiny case; rows of the mass matrices sum to 1."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ocrviz
from ocrviz.analysis import aspp_branch_shares, context_flow, region_influence
from ocrviz.analysis.context_share import aspp_tap_map, context_map
from ocrviz.data.dataset import normalize

from ocr_helpers import randomise_bn, toy_ocr

K, S, H, W = 5, 8, 32, 64


def _data(n: int = 2):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(n)]
    labels = []
    for _ in range(n):
        lab = rng.integers(0, K, (H // 4, W // 4)).repeat(4, 0).repeat(4, 1)   # 4-px blocks: cells are mixed
        lab[:3, :5] = 255
        labels.append(lab)
    return images, labels


def _brute_frac(lab, c, i, j):
    return float((lab[i * S:(i + 1) * S, j * S:(j + 1) * S] == c).mean())


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    aspp = randomise_bn(ocrviz.create_model("aspp", num_classes=K, widths=(8, 8, 16, 16), channels=8, rates=(1, 2, 3)))
    return toy_ocr(K), aspp


def test_matches_loops(models) -> None:
    ocr, aspp = models
    images, labels = _data()
    flow = context_flow(ocr, iter(images), iter(labels), aspp_model=aspp)
    h, w = H // S, W // S
    mass, infl, amass, cells = np.zeros((K, K)), np.zeros((K, K)), np.zeros((K, K)), np.zeros(K)
    for img, lab in zip(images, labels):
        x = normalize(img)[None]
        _, c = ocrviz.run_with_cache(ocr, x)
        _, ca = ocrviz.run_with_cache(aspp, x)
        sim, rw = c.sim_map[0].double().numpy(), c.region_weights[0].double().numpy()
        inf = region_influence(ocr, c)[0].double().numpy()
        shares = aspp_branch_shares([ca[n][0].numpy() for n in ("hook_branch0", "hook_branch1", "hook_branch2",
                                                                 "hook_branch3", "hook_pool")],
                                    aspp.head.project[0].weight.detach().numpy())
        for i in range(h):
            for j in range(w):
                t = lab[i * S + S // 2, j * S + S // 2]
                if t == 255:
                    continue
                p = i * w + j
                cmap = context_map(sim[p], rw)                              # h x w
                amap, _ = aspp_tap_map(i, j, shares[p], aspp.head.rates, S, (h, w), (H, W))
                for src in range(K):
                    fr = np.array([[_brute_frac(lab, src, a, b) for b in range(w)] for a in range(h)])
                    mass[t, src] += (cmap * fr).sum()
                    amass[t, src] += (amap * fr).sum()
                infl[t] += inf[p]
                cells[t] += 1
    np.testing.assert_allclose(flow.cells, cells)
    np.testing.assert_allclose(flow.ocr_mass, mass / mass.sum(1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(flow.aspp_mass, amass / amass.sum(1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(flow.ocr_influence, infl / cells[:, None], atol=1e-6)
    np.testing.assert_allclose(flow.ocr_mass.sum(1), 1.0, atol=1e-9)
    np.testing.assert_allclose(flow.aspp_mass.sum(1), 1.0, atol=1e-9)


def test_examples_figure_and_errors(models) -> None:
    ocr, aspp = models
    images, labels = _data(1)
    flow = context_flow(ocr, images, labels, n_examples=3)
    assert flow.aspp_mass is None
    (t, c), ex = next(iter(flow.examples.items()))
    assert 1 <= len(ex) <= 3
    for i, r, col in ex:
        assert labels[i][r * S + S // 2, col * S + S // 2] == t
    fig = flow.figure()
    assert len(fig.data) == 2 and fig.data[0].z.shape == (K, K)
    assert "source" in flow.to_markdown() and flow.to_dict()["n_images"] == 1
    with pytest.raises(ValueError, match="ASPP"):
        context_flow(ocr, images, labels, aspp_model=ocr)
    with pytest.raises(ValueError, match="labels ran out"):
        context_flow(ocr, images * 2, labels)
