"""Counterfactuals answered in the kernel (models too large for the page): the explorer's
``cf_request`` -> ``cf_answer`` / ``cf_answer_pred`` round trip equals full forwards in which a
forward hook replaced the sim map by the same edited rows."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ocr_helpers import hooked_head_logits, small_hrnet, toy_ocr
from ocrviz.widgets import Explorer, payload
from ocrviz.widgets.kernel_cf import edit_rows


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def _input(image: np.ndarray) -> torch.Tensor:
    from ocrviz.data.dataset import MEAN, STD

    x = (image.astype(np.float32) / 255 - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return torch.from_numpy(x.transpose(2, 0, 1).copy())[None]                   # 1 x 3 x H x W


def _edited_sim(sim: torch.Tensor, dropped, gain) -> torch.Tensor:
    """Independent of kernel_cf: the page's edit rule written out per row (1 x HW x K)."""
    out = sim.clone().double()
    for p in range(out.shape[1]):
        r = out[0, p].clone()
        if gain is not None and gain[1] != 1:
            r[gain[0]] *= gain[1]
        for d in dropped:
            r[d] = 0
        if r.sum() > 0:
            out[0, p] = r / r.sum()
    return out.float()


@pytest.mark.parametrize("build, hw", [(toy_ocr, (64, 96)), (small_hrnet, (64, 64))], ids=["toy-ocr", "hrnet"])
def test_kernel_answers_equal_hooked_forwards(build, hw) -> None:
    model = build().eval()
    image = _image(*hw)
    ex = Explorer(model, image, counterfactuals="kernel")
    assert ex.counterfactuals == "kernel" and ex.cf_kernel and ex.cf_value == b"" and "cf_pixels" not in ex.packed
    x = _input(image)
    h, w = ex.data.feat_hw
    k = ex.data.num_classes
    base_all = hooked_head_logits(model, x, {})[0]                                # K x h x w
    for (y, xx), dropped, gain in [((h // 2, w // 3), None, None), ((1, w - 2), [], [1, 2.5]), ((h - 1, 0), [0, 2], None)]:
        row = ex.data.sim_map[y * w + xx]
        if dropped is None:
            dropped = [int(np.argmax(row))]                      # the top region
        ex.cf_request = {"key": f"t{y},{xx}", "edit": "e", "cell": [y, xx], "dropped": dropped, "gain": gain}
        ans = ex.cf_answer
        assert ans["key"] == f"t{y},{xx}" and ans["cell"] == [y, xx] and "error" not in ans
        assert ans["after"] is not None and not np.allclose(ans["after"], ans["base"])
        np.testing.assert_allclose(ans["base"], base_all[:, y, xx].numpy(), atol=1e-5)
        edited = _edited_sim(torch.tensor(ex.data.sim_map)[None], dropped, gain)
        want = hooked_head_logits(model, x, {"hook_sim_map": lambda out, e=edited: e})[0]   # K x h x w
        np.testing.assert_allclose(ans["after"], want[:, y, xx].numpy(), atol=1e-5)
        # the whole image under the edit: every cell's class, and how many change
        assert ans["whole"]["cells"] == h * w and ans["whole_pending"] is False
        shown = np.frombuffer(ex.cf_answer_pred, np.uint8).reshape(h, w)
        top2 = want.topk(2, 0).values
        clear = (top2[0] - top2[1]).numpy() > 1e-4                             # not a float32 near-tie
        np.testing.assert_array_equal(shown[clear], want.argmax(0).numpy()[clear])
        assert ans["whole"]["changed"] == int((shown != base_all.argmax(0).numpy()).sum())
        # influence of region j: the predicted logit's drop when j alone is removed, renormalised
        c = int(np.argmax(ans["base"]))
        for j in range(k):
            if row[j] >= 1 - 1e-12:
                continue
            drop = _edited_sim(torch.tensor(ex.data.sim_map)[None], [j], None)
            after_j = hooked_head_logits(model, x, {"hook_sim_map": lambda out, e=drop: e})[0, c, y, xx]
            assert abs(ans["influence"][j] - (ans["base"][c] - float(after_j))) < 1e-5


def test_no_edit_gives_no_after_and_no_whole_image() -> None:
    ex = Explorer(toy_ocr().eval(), _image(32, 48), counterfactuals="kernel")
    ex.cf_request = {"key": "a", "edit": "[[],null]", "cell": [1, 2], "dropped": [], "gain": None}
    assert ex.cf_answer["after"] is None and ex.cf_answer["whole"] is None and not ex.cf_answer["whole_pending"]
    ex.cf_request = {"key": "b", "edit": "g", "cell": [1, 2], "dropped": [], "gain": [0, 1.0]}   # x1: no edit
    assert ex.cf_answer["key"] == "b" and ex.cf_answer["after"] is None


def test_bad_request_is_answered_with_an_error_and_the_kernel_lives() -> None:
    ex = Explorer(toy_ocr().eval(), _image(32, 48), counterfactuals="kernel")
    h, w = ex.data.feat_hw
    ex.cf_request = {"key": "x", "edit": "e", "cell": [h, 0], "dropped": [0], "gain": None}
    assert "outside the" in ex.cf_answer["error"] and ex.cf_answer["key"] == "x"
    ex.cf_request = {"key": "y", "edit": "e", "cell": [0, 0], "dropped": [99], "gain": None}
    assert "out of range" in ex.cf_answer["error"]
    ex.cf_request = {"key": "g", "edit": "e", "cell": [0, 0], "dropped": [], "gain": [1, -2.0]}
    assert "allowed are finite factors >= 0" in ex.cf_answer["error"]
    ex.cf_request = {"key": "z", "edit": "e", "cell": [0, 0], "dropped": [1], "gain": None}
    assert "error" not in ex.cf_answer and ex.cf_answer["after"] is not None


def test_auto_picks_the_page_for_small_heads_and_the_kernel_for_large(monkeypatch) -> None:
    model, image = toy_ocr().eval(), _image(32, 48)
    small = Explorer(model, image)
    assert small.counterfactuals == "browser" and not small.cf_kernel and "cf_pixels" in small.packed
    ph = small.data.pixel_head
    monkeypatch.setattr(payload, "CF_MAX_BYTES", ph.pixels.size * 4 - 1)     # one byte too small for the page
    large = Explorer(model, image)
    assert large.counterfactuals == "kernel" and large.cf_kernel and "cf_pixels" not in large.packed
    forced = Explorer(model, image, counterfactuals="browser")               # the caller's choice wins
    assert forced.counterfactuals == "browser" and "cf_pixels" in forced.packed
    off = Explorer(model, image, counterfactuals="off")
    assert off.counterfactuals == "off" and not off.cf_kernel and "cf_pixels" not in off.packed
    with pytest.raises(ValueError, match="counterfactuals='gpu'; allowed: 'auto', 'browser', 'kernel', 'off'"):
        Explorer(model, image, counterfactuals="gpu")


def test_a_model_without_a_per_pixel_head_has_no_counterfactuals() -> None:
    from ocrviz.widgets.synthetic import synthetic_data

    ex = Explorer.from_data(synthetic_data(h=6, w=10, k=4, output_stride=4, seed=2), counterfactuals="kernel")
    assert ex.counterfactuals == "off" and not ex.cf_kernel


def test_edit_rows_is_the_pages_rule() -> None:
    rows = np.array([[0.5, 0.3, 0.2], [1.0, 0.0, 0.0], [0.2, 0.2, 0.6]])
    out, ok = edit_rows(rows, [0], None)
    np.testing.assert_allclose(out, [[0, 0.6, 0.4], [1.0, 0, 0], [0, 0.25, 0.75]])   # row 1 has no weight left
    np.testing.assert_array_equal(ok, [True, False, True])
    out, ok = edit_rows(rows, [1], [1, 3.0])                                 # a dropped region stays dropped
    np.testing.assert_allclose(out[0], [0.5 / 0.7, 0, 0.2 / 0.7])
    out, ok = edit_rows(rows, [], [2, 2.0])
    np.testing.assert_allclose(out[2], [0.2 / 1.6, 0.2 / 1.6, 1.2 / 1.6])
    assert not edit_rows(rows, [], [2, 1.0])[1].any()


def test_a_failing_whole_image_rerun_is_reported_and_the_pixel_answer_stays(monkeypatch) -> None:
    ex = Explorer(toy_ocr().eval(), _image(32, 48), counterfactuals="kernel")

    def boom(*a, **k):
        raise MemoryError("no room for the whole image")
    monkeypatch.setattr(ex._kcf, "whole", boom)
    ex.cf_request = {"key": "w", "edit": "e", "cell": [1, 1], "dropped": [0], "gain": None}
    ans = ex.cf_answer
    assert ans["after"] is not None and ans["whole"] is None and ans["whole_pending"] is False
    assert ans["whole_error"] == "MemoryError: no room for the whole image"
