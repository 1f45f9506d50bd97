"""The gradient ERF beside a head whose map rests on a convention (issue 18: PSP, ASPP, DeepLabV3+):
Explorer(toycity-psp, show_erf=True) computes, in the kernel, the selected cell's ERF, and what it
sends the page equals ``ocrviz.context.gradient_erf_map`` (Captum's Saliency) at the cell's centre
pixel, within half an 8-bit code; its strip equals that map's mass by class.  A head read exactly
(toycity-sa) gets no ERF panel."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ocrviz
from ocrviz.context import cell_classes
from ocrviz.context.erf import CONVENTION, gradient_erf_map
from ocrviz.normalisation import input_normalisation, normalise

CELLS = [(9, 50), (20, 7)]


@pytest.fixture(scope="module")
def scene():
    from ocrviz.data.toycity import make_scene

    torch.set_num_threads(1)
    return make_scene(3, 256, 512)


def test_psp_explorer_sends_the_gradient_erf_of_the_clicked_cell(scene):
    from ocrviz.widgets import Explorer

    psp = ocrviz.load_model("toycity-psp")
    ex = Explorer(psp, scene.image, scene.labels, show_erf=True, selected=list(CELLS[0]))
    assert ex.sites[0]["erf"] is True and not ex.sites[0]["sites"][0]["exact"]
    x = normalise(scene.image, *input_normalisation(psp))
    _, cache = ocrviz.run_with_cache(psp, x)
    cls = cell_classes(cache).astype(np.int64)
    h, w = ex.data.feat_hw
    for y, xc in CELLS:
        ex.select(y, xc)
        assert ex.erf_cell == [y, xc] and ex.erf_status == ""
        want = gradient_erf_map(psp, x, (y * 8 + 4, xc * 8 + 4))                 # the cell's centre pixel
        assert want.weights.shape == (h, w) and want.convention == CONVENTION
        got = np.frombuffer(ex.erf_map, np.uint8).astype(np.float64).reshape(h, w) * ex.erf_scale
        assert ex.erf_scale == pytest.approx(want.weights.max() / 255, rel=1e-4)
        assert np.abs(got - want.weights).max() <= ex.erf_scale / 2 + 1e-6 * want.weights.max()
        mass = want.mass_by_class(cls, ex.data.class_names)
        np.testing.assert_allclose(ex.erf_mass, [mass[k] for k in ex.data.class_names], atol=1e-5)
        # the ERF reaches beyond the cell's own bin: it is not the convention's map
        assert (want.weights > 0).sum() > 100


def test_an_exact_head_gets_no_erf_panel(scene):
    from ocrviz.widgets import Explorer
    from ocrviz.widgets.explorer import rests_on_convention

    ex = Explorer(ocrviz.load_model("toycity-sa"), scene.image, scene.labels, show_erf=True)
    assert "erf" not in ex.sites[0] and not rests_on_convention(ex.sites[0])
    assert ex.erf_cell == [-1, -1]
