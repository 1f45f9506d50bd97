"""Captum ERF equals a plain autograd gradient and respects the receptive field."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ocrviz.analysis.erf import gradient_erf, make_erf_fn


class _Tiny(nn.Module):
    """One 3x3 conv then 2x2 avg pool then upsample: receptive field is known."""

    output_stride = 2

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.avg_pool2d(self.conv(x), 2)
        return nn.functional.interpolate(y, size=x.shape[-2:], mode="nearest")


def test_erf_equals_autograd_gradient() -> None:
    torch.manual_seed(0)
    model, x = _Tiny(), torch.randn(1, 3, 16, 20)
    erf = gradient_erf(model, x, y=7, x=9, target=2)
    xx = x.clone().requires_grad_(True)
    model(xx)[0, 2, 7, 9].backward()
    want = xx.grad[0].abs().sum(0).numpy()
    assert np.allclose(erf.pixels, want, atol=1e-6)
    assert np.isclose(erf.cells.sum(), 1.0) and erf.cells.shape == (8, 10)


def test_erf_is_zero_outside_the_receptive_field() -> None:
    torch.manual_seed(0)
    model, x = _Tiny(), torch.randn(1, 3, 16, 20)
    erf = gradient_erf(model, x, y=7, x=9)
    # output (7, 9) reads pooled cell (3, 4) = conv outputs rows 6-7, cols 8-9 -> inputs rows 5-8, cols 7-10
    nz = np.argwhere(erf.pixels > 0)
    assert nz[:, 0].min() >= 5 and nz[:, 0].max() <= 8 and nz[:, 1].min() >= 7 and nz[:, 1].max() <= 10
    assert erf.target == int(model(x)[0, :, 7, 9].argmax())


def test_erf_fn_uses_cell_centres_and_validates() -> None:
    model, x = _Tiny(), torch.randn(1, 3, 16, 20)
    fn = make_erf_fn(model, x)
    assert np.allclose(fn(3, 4), gradient_erf(model, x, 7, 9).cells)
    try:
        gradient_erf(model, x, 16, 0)
    except ValueError as e:
        assert "outside the 16 x 20 image" in str(e)
    else:
        raise AssertionError("no error for a pixel outside the image")


def test_kept_graph_erf_equals_captum_on_many_cells_of_a_real_aspp_model() -> None:
    """The explorer's per-click ERF (one backward on a kept graph) equals Captum's Saliency
    with a fresh forward, cell after cell (the graph survives every call)."""
    import ocrviz

    torch.manual_seed(0)
    model = ocrviz.create_model("aspp", num_classes=4).eval()
    x = torch.randn(1, 3, 64, 96)
    fn = make_erf_fn(model, x)
    s = model.output_stride
    for row, col in [(0, 0), (3, 5), (7, 11), (3, 5)]:
        want = gradient_erf(model, x, min(63, row * s + s // 2), min(95, col * s + s // 2)).cells
        np.testing.assert_allclose(fn(row, col), want, atol=1e-7)


def test_kept_graph_takes_the_feature_resolution_shortcut_and_equals_captum_on_the_shipped_aspp() -> None:
    """On an ocrviz SegModel the per-click backward starts at the head's logits (seeded with the
    upsampling's bilinear weights) and the head's graph is channels_last: the same map as Captum
    (float32 round-off), and the model is left as it was (no hooks, contiguous weights)."""
    import ocrviz
    from ocrviz.analysis.erf import _GraphERF

    model = ocrviz.load_model("toycity-aspp")
    torch.manual_seed(1)
    x = torch.randn(1, 3, 128, 256)
    erf = _GraphERF(model, x)
    for y, xx in [(0, 0), (60, 131), (127, 255), (33, 7)]:
        got = erf(y, xx)
        want = gradient_erf(model, x, y, xx)
        np.testing.assert_allclose(got, want.cells, rtol=1e-5, atol=1e-9)
    assert erf.main is not None and erf.out is None                   # the shortcut was taken
    assert not model.head._forward_pre_hooks and not model.head._forward_hooks
    assert all(p.is_contiguous() for p in model.parameters())


def test_a_hook_on_the_logits_keeps_the_full_resolution_backward() -> None:
    """A hook that changes the logits (capture, a counterfactual) is part of what the ERF explains:
    then the backward starts at the full-resolution logit, as Captum's does."""
    import ocrviz
    from ocrviz.analysis.erf import _GraphERF

    torch.manual_seed(0)
    model = ocrviz.create_model("aspp", num_classes=4).eval()
    x = torch.randn(1, 3, 64, 96)
    handle = model.hook_logits.register_forward_hook(lambda m, i, out: out * torch.linspace(0.5, 2, 96))
    try:
        erf = _GraphERF(model, x)
        np.testing.assert_allclose(erf(20, 50), gradient_erf(model, x, 20, 50).cells, atol=1e-7)
        assert erf.out is not None and erf.main is None
    finally:
        handle.remove()


def test_a_given_prediction_sets_the_target_class() -> None:
    """The explorer passes the prediction it shows: the ERF is that class's, even where the kept
    forward's own argmax would pick another (here: a prediction map of one class everywhere)."""
    import ocrviz

    torch.manual_seed(0)
    model = ocrviz.create_model("aspp", num_classes=4).eval()
    x = torch.randn(1, 3, 64, 96)
    s = model.output_stride
    for k in range(4):
        fn = make_erf_fn(model, x, pred=np.full((64, 96), k))
        want = gradient_erf(model, x, 3 * s + s // 2, 5 * s + s // 2, target=k).cells
        np.testing.assert_allclose(fn(3, 5), want, atol=1e-7)
