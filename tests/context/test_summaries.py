"""The CLI summary and the explorer data read where a pixel's context comes from through ContextMap.

On the shipped ToyCity OCR and ASPP models: the summary's mass strip of each
panel must equal the class masses computed here from a separate capture's
float tensors (sim map, region weights, branch outputs, head logits).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ocrviz
from ocrviz import context


@pytest.fixture(scope="module")
def shipped():
    from ocrviz.data.toycity import make_scene
    from ocrviz.widgets import Explorer

    ocr, aspp = ocrviz.load_model("toycity-ocr"), ocrviz.load_model("toycity-aspp")
    scene = make_scene(3, 128, 256)
    ex = Explorer(ocr, scene.image, aspp_model=aspp)
    return ocr, aspp, scene, ex.data


def test_summary_mass_strip_equals_the_float_tensors(shipped) -> None:
    from ocrviz.explain_page import context_summary
    from ocrviz.normalisation import input_normalisation, normalise

    ocr, aspp, scene, data = shipped
    x = normalise(scene.image, *input_normalisation(ocr))
    _, oc = ocrviz.run_with_cache(ocr, x)
    _, ac = ocrviz.run_with_cache(aspp, x)
    names = data.class_names
    h, w = data.feat_hw
    ocr_cls = oc.head_logits[0].argmax(0)                                        # h x w
    for cell in [(2, 3), (h // 2, w // 2), (h - 1, 0)]:
        s = context_summary(data, cell, top=len(names) + 1)          # every class and off-grid
        strips = s["pixel"]["mass_by_class"]
        assert sorted(strips) == ["aspp-context", "ocr-context"]
        cmap = torch.einsum("k,khw->hw", oc.sim_map[0, cell[0] * w + cell[1]].double(), oc.region_weights[0].double())
        want = {n: float(cmap[ocr_cls == k].sum()) for k, n in enumerate(names)}
        for n, v in strips["ocr-context"].items():
            assert v == pytest.approx(want[n], abs=1e-6)
        assert set(strips["ocr-context"]) == {n for n, v in want.items() if v > 0}
        (amap,) = ocrviz.context_maps(ac, (cell[0] * 8, cell[1] * 8))
        amass = context.mass_by_class(amap, context.cell_classes(ac), names)
        for n, v in strips["aspp-context"].items():
            assert v == pytest.approx(amass[n], abs=1e-6)
        assert sum(strips["aspp-context"].values()) == pytest.approx(1.0, abs=1e-6)


def test_summary_html_states_each_panels_strip(shipped) -> None:
    from ocrviz.explain_page import context_summary, summary_html as _summary_html

    *_, data = shipped
    page = _summary_html(context_summary(data, (5, 9)))
    assert "ocr-context: where its mass lies" in page
    assert "aspp-context: where its mass lies" in page and " % " in page
