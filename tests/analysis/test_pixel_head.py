"""The folded per-pixel head equals a full forward with the sim map replaced by a hook."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ocrviz
from ocrviz.analysis.pixel_head import pixel_head
from random_bn import randomise_bn


@pytest.fixture(scope="module")
def toy():
    torch.manual_seed(0)
    model = randomise_bn(ocrviz.create_model("ocrnet", num_classes=5))
    x = torch.randn(1, 3, 64, 96)
    logits, cache = ocrviz.run_with_cache(model, x)
    return model, x, cache


def _forward_with_row(model, x, p: int, row: np.ndarray) -> np.ndarray:
    """Independent: a full forward in which a forward hook replaces row p of the sim map."""
    name = next(n for n, _ in model.named_modules() if n.endswith("hook_sim_map"))
    point = model.get_submodule(name)

    def edit(mod, args, out):
        out = out.clone()
        out[0, p] = torch.as_tensor(row, dtype=out.dtype)
        return out

    handle = point.register_forward_hook(edit)
    try:
        with torch.no_grad():
            _, cache = ocrviz.run_with_cache(model, x, names=["hook_head_logits"])
    finally:
        handle.remove()
    hl = cache["hook_head_logits"][0]                     # K x h x w
    return hl.reshape(hl.shape[0], -1)[:, p].double().numpy()


def test_unedited_rows_give_the_cached_head_logits(toy) -> None:
    model, x, cache = toy
    ph = pixel_head(model, cache)
    hl = cache.head_logits[0].reshape(5, -1).double().numpy()          # K x HW
    sim = cache.sim_map[0].double().numpy()
    for p in (0, 7, 40, hl.shape[1] - 1):
        np.testing.assert_allclose(ph.logits(sim[p], p), hl[:, p], atol=1e-4)


@pytest.mark.parametrize("edit", ["drop", "only", "scale"])
def test_edited_rows_equal_a_hooked_full_forward(toy, edit: str) -> None:
    model, x, cache = toy
    ph = pixel_head(model, cache)
    sim = cache.sim_map[0].double().numpy()
    rng = np.random.default_rng(1)
    for p in rng.choice(sim.shape[0], 4, replace=False):
        k = int(np.argmax(sim[p]))
        row = sim[p].copy()
        if edit == "drop":
            row[k] = 0
        elif edit == "only":
            row[:] = 0
            row[k] = 1
        else:
            row[k] *= 3
        row /= row.sum()
        np.testing.assert_allclose(ph.logits(row, int(p)), _forward_with_row(model, x, int(p), row), atol=1e-4)


def test_models_without_the_head_give_none() -> None:
    model = ocrviz.create_model("aspp", num_classes=3).eval()
    _, cache = ocrviz.run_with_cache(model, torch.randn(1, 3, 32, 32))
    assert pixel_head(model, cache) is None


def test_predict_all_equals_the_cached_head_with_or_without_a_kept_pixel_part(toy) -> None:
    """Every cell's class from predict_all (float32 torch, value folded into f_up's conv, the pixel
    half of the fuse conv recomputed or kept) is the cached head's argmax wherever it is not a tie."""
    model, x, cache = toy
    ph = pixel_head(model, cache)
    hl = cache.head_logits[0].reshape(5, -1)                                        # K x HW
    top2 = hl.topk(2, 0).values
    clear = ((top2[0] - top2[1]) > 1e-4).numpy()
    want = hl.argmax(0).numpy()
    sim = cache.sim_map[0].numpy()
    for got in (ph.predict_all(sim, chunk=100), ph.predict_all(sim, pixel_part=ph.pixel_part(chunk=77))):
        np.testing.assert_array_equal(got[clear], want[clear])
    assert clear.mean() > 0.9
