"""OCR invariants that hold for any weights, and an independent float64 recomputation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hook_recorder import record_hooks as _record

from ocrviz.models.ocr import OCRHead

BLOCK = "ocr_distri_head.object_context_block."


def _randomise_bn(module: torch.nn.Module, gen: torch.Generator) -> None:
    """Non-trivial BN statistics so that eval mode is not the identity."""
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = torch.rand(n, generator=gen) + 0.5
            m.bias.data = 0.1 * torch.randn(n, generator=gen)
            m.running_mean = 0.1 * torch.randn(n, generator=gen)
            m.running_var = torch.rand(n, generator=gen) + 0.5


@pytest.fixture(params=["eval", "train"])
def run(request):
    """A small OCR head with random weights, run once; returns (head, input, hooks, outputs)."""
    gen = torch.Generator().manual_seed(7)
    head = OCRHead(in_channels=16, num_classes=6, mid_channels=24, key_channels=12)
    _randomise_bn(head, gen)
    with torch.no_grad():
        for p in head.ocr_distri_head.object_context_block.f_pixel.parameters():
            p.mul_(3)  # sharper attention than at init
    head.train(request.param == "train")
    seen = _record(head)
    x = torch.randn(2, 16, 5, 9, generator=gen)
    with torch.no_grad():
        aux, main = head(x)
    return head, x, seen, (aux, main)


def test_sim_map_rows_sum_to_one_over_regions(run):
    _, _, seen, _ = run
    sim = seen[BLOCK + "hook_sim_map"]                                   # B x HW x K
    assert sim.shape == (2, 45, 6)
    assert (sim >= 0).all()
    torch.testing.assert_close(sim.sum(-1), torch.ones(2, 45), atol=1e-6, rtol=0)
    assert sim.std(-1).max() > 1e-3, "attention is uniform: the test would not notice a wrong axis"
    assert not torch.allclose(sim.sum(1), torch.ones(2, 6)), "softmax taken over pixels?"


def test_region_weights_sum_to_one_over_pixels(run):
    _, _, seen, _ = run
    rw = seen["ocr_gather_head.hook_region_weights"]                     # B x K x h x w
    assert rw.shape == (2, 6, 5, 9)
    assert (rw >= 0).all()
    torch.testing.assert_close(rw.sum((2, 3)), torch.ones(2, 6), atol=1e-6, rtol=0)
    assert not torch.allclose(rw.sum(1), torch.ones(2, 5, 9)), "softmax taken over classes (the unmerged PR)?"


def test_region_weights_are_the_spatial_softmax_of_the_soft_regions(run):
    _, _, seen, (aux, _) = run
    torch.testing.assert_close(seen["hook_soft_regions"], aux)
    expected = torch.softmax(aux.flatten(2), dim=2).reshape(aux.shape)
    torch.testing.assert_close(seen["ocr_gather_head.hook_region_weights"], expected)


def test_object_context_is_non_negative(run):
    _, _, seen, _ = run
    ctx = seen[BLOCK + "hook_object_context"]                            # B x C x h x w
    assert ctx.shape == (2, 24, 5, 9)
    assert ctx.min() >= 0
    assert ctx.max() > 0, "all-zero context would make the check vacuous"


def test_independent_float64_recomputation(run):
    """sim_map, context and proxies from the captured inputs, in numpy float64."""
    head, _, seen, _ = run
    q = seen[BLOCK + "hook_query"].double().numpy()                      # B x HW x Ck
    k = seen[BLOCK + "hook_key"].double().numpy()                        # B x Ck x K
    v = seen[BLOCK + "hook_value"].double().numpy()                      # B x K x Ck
    ck = head.ocr_distri_head.object_context_block.key_channels
    assert q.shape[-1] == k.shape[1] == v.shape[-1] == ck == 12

    logits = np.einsum("bpc,bck->bpk", q, k) / np.sqrt(ck)
    logits -= logits.max(-1, keepdims=True)
    sim = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(seen[BLOCK + "hook_sim_map"].double().numpy(), sim, atol=1e-6, rtol=1e-5)

    context = np.einsum("bpk,bkc->bcp", sim, v).reshape(2, ck, 5, 9)    # B x Ck x h x w
    np.testing.assert_allclose(seen[BLOCK + "hook_context"].double().numpy(), context, atol=1e-5, rtol=1e-4)

    pix = seen["hook_pixel_feats"].double().numpy().reshape(2, 24, 45)   # B x C x HW
    soft = seen["hook_soft_regions"].double().numpy().reshape(2, 6, 45)  # B x K x HW
    w = np.exp(soft - soft.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    proxies = np.einsum("bcp,bkp->bck", pix, w)                          # B x C x K
    np.testing.assert_allclose(seen["ocr_gather_head.hook_proxies"].double().numpy(), proxies,
                               atol=1e-5, rtol=1e-4)


def test_seed_example_shapes():
    """The seed's numbers: pixel feats 512 x 100 x 100, 20 classes -> proxies 512 x 20, sim map 10000 x 20."""
    head = OCRHead(in_channels=4, num_classes=20, mid_channels=512, key_channels=256).eval()
    seen = _record(head)
    with torch.no_grad():
        aux, main = head(torch.randn(1, 4, 100, 100))
    assert seen["hook_pixel_feats"].shape == (1, 512, 100, 100)
    assert seen["ocr_gather_head.hook_proxies"].shape == (1, 512, 20)
    assert seen[BLOCK + "hook_sim_map"].shape == (1, 10000, 20)
    assert seen[BLOCK + "hook_query"].shape == (1, 10000, 256)
    assert seen[BLOCK + "hook_key"].shape == (1, 256, 20)
    assert seen[BLOCK + "hook_object_context"].shape == (1, 512, 100, 100)
    assert aux.shape == main.shape == (1, 20, 100, 100)
