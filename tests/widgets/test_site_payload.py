"""site_payload: every cell's map of every context site, as the page receives it, equals
ocrviz.context_maps (toycity-sa, toycity-cc per pass) and, for OCR, sum_k sim[p,k] region_k
computed here from the captured tensors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ocrviz
from site_specs import f32 as _f32, raw as _raw
from ocrviz.context import context_maps
from ocrviz.widgets.site_payload import MAX_SITE_CELLS, head_sites, quantise_rows, site_entries

CELLS = [(0, 0), (5, 17), (16, 32), (31, 63), (20, 3)]       # (row, col) on ToyCity's 32 x 64 grid
STRIDE = 8


@pytest.fixture(scope="module")
def image():
    """A ToyCity street at the models' size, normalised as the models expect: 1 x 3 x 256 x 512."""
    from ocrviz.data.toycity import make_scene
    from ocrviz.normalisation import input_normalisation, normalise

    return normalise(make_scene(3, 256, 512).image, *input_normalisation(ocrviz.load_model("toycity-ocr")))


def _capture(name: str, x: torch.Tensor):
    torch.set_num_threads(1)
    m = ocrviz.load_model(name)
    _, cache = ocrviz.run_with_cache(m, x)
    return m, cache


def _check_against_context_maps(cache, entries, k: int, cls: np.ndarray) -> int:
    """Every entry's rows for CELLS against context_maps at that cell's pixel; returns the sites seen."""
    h, w = 32, 64
    entries = [e for e in entries if "rollout_of" not in e]      # the rollout: its own test below
    for cell in CELLS:
        pixel = (cell[0] * STRIDE + 3, cell[1] * STRIDE + 5)
        want = context_maps(cache, pixel)
        assert len(want) == len(entries)
        q = cell[0] * w + cell[1]
        for m, e in zip(want, entries):
            assert e["site"] == m.site and e["kind"] == m.kind and e["exact"] == m.exact
            assert e["convention"] == m.convention and e["grid"] == [h, w]
            codes = np.frombuffer(_raw(e["maps"]), np.uint8).reshape(h * w, h * w)   # HW x HW
            scale = _f32(e["scales"])[q]
            got = codes[q].astype(np.float64) * scale
            ref = m.weights.reshape(-1)
            assert scale == pytest.approx(ref.max() / 255, rel=1e-6)
            assert np.abs(got - ref).max() <= scale / 2 + 1e-9                    # 8-bit: half a code
            assert _f32(e["off_grid"])[q] == pytest.approx(m.off_grid, abs=1e-7)
            mass = _f32(e["class_mass"]).reshape(h * w, k)[q]
            want_mass = m.mass_by_class(cls, [f"c{i}" for i in range(k)])
            np.testing.assert_allclose(mass, [want_mass[f"c{i}"] for i in range(k)], atol=2e-7)
            assert mass.sum() + m.off_grid == pytest.approx(1.0, abs=1e-5)
    return len(entries)


def test_quantise_rows_half_a_code():
    rng = np.random.default_rng(0)
    a = rng.random((7, 50)) ** 3
    codes, scales = quantise_rows(a)
    assert np.all(np.abs(codes * scales[:, None].astype(np.float64) - a) <= scales[:, None] / 2 + 1e-12)
    assert (codes.max(axis=1) == 255).all()


def test_self_attention_every_cell_equals_context_maps(image):
    m, cache = _capture("toycity-sa", image)
    cls = np.random.default_rng(1).integers(0, 9, (32, 64))
    entries = site_entries(cache, cls, m.class_names, label="toycity-sa")
    assert [e["kind"] for e in entries] == ["self_attention"] and entries[0]["exact"]
    assert "sources" not in entries[0]                      # every cell is a source: no bars
    assert _check_against_context_maps(cache, entries, 9, cls) == 1


def test_criss_cross_each_pass_equals_context_maps(image):
    m, cache = _capture("toycity-cc", image)
    cls = np.random.default_rng(2).integers(0, 9, (32, 64))
    entries = site_entries(cache, cls, m.class_names, label="toycity-cc")
    assert len(entries) >= 2, f"expected one site per criss-cross pass, got {[e['site'] for e in entries]}"
    _check_against_context_maps(cache, entries, 9, cls)
    # a single pass reaches only the cell's row and column (H + W - 1 cells)
    codes = np.frombuffer(_raw(entries[0]["maps"]), np.uint8).reshape(2048, 32, 64)
    row, col = 5, 17
    nz = np.argwhere(codes[row * 64 + col] > 0)
    assert all(r == row or c == col for r, c in nz)


def test_ocr_site_is_sim_row_times_regions(image):
    m, cache = _capture("toycity-ocr", image)
    cls = np.random.default_rng(3).integers(0, 9, (32, 64))
    (e,) = site_entries(cache, cls, m.class_names)
    sim = cache.sim_map[0].double().numpy()                               # HW x K
    reg = cache.region_weights[0].double().numpy().reshape(9, -1)         # K x HW
    codes = np.frombuffer(_raw(e["maps"]), np.uint8).reshape(2048, 2048)
    scales = _f32(e["scales"])
    rows = _f32(e["source_rows"]).reshape(2048, 9)
    for y, x in CELLS:
        q = y * 64 + x
        want = sim[q] @ reg                                               # sum_k sim[p,k] region_k
        assert np.abs(codes[q] * float(scales[q]) - want).max() <= scales[q] / 2 + 1e-7
        np.testing.assert_allclose(rows[q], sim[q], atol=1e-7)          # the bars: the sim row
        mass = _f32(e["class_mass"]).reshape(2048, 9)[q]
        np.testing.assert_allclose(mass, np.bincount(cls.ravel(), weights=want, minlength=9), atol=1e-6)
    assert e["sources"] == list(m.class_names) and e["exact"]


def test_too_large_grid_is_refused_in_a_sentence(image):
    m, cache = _capture("toycity-sa", image)
    (e,) = site_entries(cache, np.zeros((32, 64), int), m.class_names, max_cells=1024)
    assert "maps" not in e and "32 x 64" in e["why"] and "1024 cells fit" in e["why"]
    assert MAX_SITE_CELLS >= 2048


def test_head_sites_refuses_a_head_without_context(image):
    with pytest.raises(ValueError, match="no context site"):
        head_sites(["toycity-fcn"], image, np.zeros((32, 64), int), [f"c{i}" for i in range(9)])


def test_explorer_opens_a_model_without_ocr_by_its_sites():
    from ocrviz.data.toycity import make_scene
    from ocrviz.widgets import Explorer
    from ocrviz.widgets.payload import to_payload

    torch.set_num_threads(1)
    scene = make_scene(3, 256, 512)
    ex = Explorer(ocrviz.load_model("toycity-sa"), scene.image, compare=["toycity-cc"])
    d = ex.data
    assert d.sim_map is None and [hd["label"] for hd in d.sites] == ["toycity-sa", "toycity-cc"]
    assert [e["kind"] for e in d.sites[1]["sites"]][:2] == ["criss_cross", "criss_cross"]
    assert ex.sim_map == b"" and len(ex.sites) == 2 and to_payload(d)["region_mass"] == b""
    # the strips count by toycity-sa's own argmax at feature resolution: its head re-run on the features
    from ocrviz.context import cell_classes
    from ocrviz.normalisation import input_normalisation, normalise

    x = normalise(scene.image, *input_normalisation(ocrviz.load_model("toycity-sa")))
    logits, cache = ocrviz.run_with_cache(ocrviz.load_model("toycity-sa"), x)
    np.testing.assert_array_equal(d.cell_classes(), cell_classes(cache))
    e = d.sites[0]["sites"][0]
    (m,) = context_maps(cache, (100, 200))
    q = (100 // 8) * 64 + 200 // 8
    mass = _f32(e["class_mass"]).reshape(2048, 9)[q]
    want = m.mass_by_class(cell_classes(cache).astype(np.int64), list(d.class_names))
    np.testing.assert_allclose(mass, [want[n] for n in d.class_names], atol=2e-7)
    with pytest.raises(ValueError, match="no OCR block"):
        Explorer(ocrviz.load_model("toycity-fcn"), scene.image)


def test_criss_cross_rollout_entry_equals_criss_cross_rollout(image):
    from ocrviz.context import criss_cross

    m, cache = _capture("toycity-cc", image)
    cls = np.random.default_rng(4).integers(0, 9, (32, 64))
    entries = site_entries(cache, cls, m.class_names, label="toycity-cc")
    roll = entries[-1]
    assert [e["kind"] for e in entries] == ["criss_cross"] * 3 and not roll["exact"]
    assert roll["convention"] == criss_cross.ROLLOUT and roll["rollout_of"] == [e["site"] for e in entries[:2]]
    codes = np.frombuffer(_raw(roll["maps"]), np.uint8).reshape(2048, 2048)
    scales = _f32(roll["scales"])
    for y, x in CELLS:
        want = criss_cross.rollout(cache, (y, x))                      # the producer's loop over the H+W-1 cells
        q = y * 64 + x
        assert np.abs(codes[q] * float(scales[q]) - want.weights.reshape(-1)).max() <= scales[q] / 2 + 1e-7
        mass = _f32(roll["class_mass"]).reshape(2048, 9)[q]
        np.testing.assert_allclose(mass, np.bincount(cls.ravel(), weights=want.weights.ravel(), minlength=9),
                                   atol=2e-6)


def test_danet_pam_entry_carries_the_cam_sentence(image):
    """toycity-da: the PAM site's entry carries ContextMap.extra["note"] (CAM mixes channels, so it has no
    spatial map), the same sentence context_maps gives; toycity-sa's entry carries none."""
    m, cache = _capture("toycity-da", image)
    cls = np.zeros((32, 64), np.int64)
    (e,) = site_entries(cache, cls, m.class_names)
    (want,) = context_maps(cache, (8 * 5, 8 * 17))
    assert e["note"] == want.extra["note"] and "CAM" in e["note"] and "no spatial context map" in e["note"]
    assert e["exact"] and e["kind"] == "self_attention" and e["site"] == want.site
    _, sa_cache = _capture("toycity-sa", image)
    assert [x["note"] for x in site_entries(sa_cache, cls, m.class_names)] == [""]


def test_psp_bins_get_ranked_bars(image):
    """toycity-psp's 50 pooling bins (1 + 4 + 9 + 36) are few enough for ranked bars: each cell's source
    row equals context_maps' source weights, a quarter of it on each scale's bins (the stated convention)."""
    m, cache = _capture("toycity-psp", image)
    (e,) = site_entries(cache, np.zeros((32, 64), np.int64), m.class_names)
    assert len(e["sources"]) == 50 and e["sources"][0] == "1x1 bin (0, 0)"
    rows = _f32(e["source_rows"]).reshape(2048, 50)
    for y, x in CELLS:
        (want,) = context_maps(cache, (y * STRIDE + 3, x * STRIDE + 5))
        assert list(want.sources) == e["sources"]
        np.testing.assert_allclose(rows[y * 64 + x], want.source_weights, atol=1e-7)
        per_scale = np.add.reduceat(rows[y * 64 + x], [0, 1, 5, 14])              # 1x1, 2x2, 3x3, 6x6 bins
        np.testing.assert_allclose(per_scale, 0.25, atol=1e-6)
