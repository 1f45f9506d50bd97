"""A context site too large to ship whole (``site_cells`` below its grid): the entry says so in a sentence
and the kernel answers the clicked cell's map (``site_request`` -> ``site_answer``): equal to
ocrviz.context_maps at that pixel within half an 8-bit code, its class shares exact, for the explorer's own
head and for a compare= head; bad requests are answered with an error, the kernel lives on."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ocrviz
from site_specs import u8 as _codes
from ocrviz.context import context_maps
from ocrviz.normalisation import input_normalisation, normalise


@pytest.fixture(scope="module")
def opened():
    from ocrviz.data.toycity import make_scene
    from ocrviz.widgets import Explorer

    torch.set_num_threads(1)
    scene = make_scene(3, 256, 512)
    ex = Explorer(ocrviz.load_model("toycity-sa"), scene.image, site_cells=1024, compare=["toycity-cc"])
    x = normalise(scene.image, *input_normalisation(ocrviz.load_model("toycity-sa")))
    caches = {n: ocrviz.run_with_cache(ocrviz.load_model(n), x)[1] for n in ("toycity-sa", "toycity-cc")}
    return ex, caches


def test_too_large_sites_are_answered_cell_by_cell(opened):
    ex, caches = opened
    entries = [e for hd in ex.sites for e in hd["sites"]]
    assert all(e.get("on_demand") and "maps" not in e for e in entries)
    assert "in a live notebook the kernel sends the clicked cell's map" in entries[0]["why"]
    assert entries[0]["exact"] and entries[0]["kind"] == "self_attention"
    cls = ex.data.cell_classes()
    for head, name, site in [(0, "toycity-sa", 0), (1, "toycity-cc", 0), (1, "toycity-cc", 1)]:
        for y, x in [(5, 17), (31, 63), (0, 0)]:
            q = y * 64 + x
            ex.site_request = {"key": "k", "rows": [{"key": f"{head}/{site}/{q}", "head": head, "site": site, "row": q}]}
            a = ex.site_answer
            assert a["key"] == f"{head}/{site}/{q}" and "error" not in a
            want = context_maps(caches[name], (y * 8 + 3, x * 8 + 5))[site]
            got = _codes(a["maps"]).astype(np.float64) * a["scale"]
            assert a["scale"] == pytest.approx(want.weights.max() / 255, rel=1e-6)
            assert np.abs(got - want.weights.reshape(-1)).max() <= a["scale"] / 2 + 1e-9
            mass = want.mass_by_class(cls, ex.data.class_names)
            np.testing.assert_allclose(a["shares"], [mass[n] for n in ex.data.class_names], atol=1e-9)
            assert a["off"] == pytest.approx(want.off_grid, abs=1e-9)


def test_bad_requests_get_an_error(opened):
    ex, _ = opened
    for req, said in [({"key": "a", "head": 5, "site": 0, "row": 0}, "head 5 has no on-demand site"),
                      ({"key": "b", "head": 0, "site": 3, "row": 0}, "site 3 of head 0"),
                      ({"key": "c", "head": 0, "site": 0, "row": 99999}, "outside site 0's 32 x 64 grid"),
                      ({"key": "d", "head": "x"}, "a site request is")]:
        ex.site_request = {"key": req["key"], "rows": [req]}
        assert ex.site_answer["key"] == req["key"] and said in ex.site_answer["error"]


def test_one_request_answers_every_row_it_carries(opened):
    ex, _ = opened
    seen = []
    ex.observe(lambda change: seen.append(change["new"]["key"]), names=["site_answer"])
    ex.site_request = {"key": "0/0/1|1/0/1|1/1/1", "rows": [{"key": k, "head": int(k[0]), "site": int(k[2]), "row": 1}
                                                          for k in ("0/0/1", "1/0/1", "1/1/1")]}
    assert seen == ["0/0/1", "1/0/1", "1/1/1"]


def test_site_cells_is_checked():
    from ocrviz.widgets import Explorer

    with pytest.raises(ValueError, match="site_cells=0: give a whole number"):
        Explorer(ocrviz.load_model("toycity-sa"), np.zeros((64, 128, 3), np.uint8), site_cells=0)
