"""Explorer (Python side): traits, static files, selection checks, ERF on demand."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import traitlets

import ocrviz
from ocrviz.widgets import Explorer
from ocrviz.widgets.explorer import STATIC
from ocrviz.widgets.synthetic import synthetic_data


@pytest.fixture(scope="module")
def data():
    return synthetic_data(h=6, w=10, k=4, output_stride=4, seed=2)


def test_public_name_and_static_files(data) -> None:
    assert ocrviz.Explorer is Explorer
    ex = Explorer.from_data(data)
    esm = (STATIC / "explorer.js").read_text()
    assert ex._esm == esm and ex._css == (STATIC / "explorer.css").read_text()
    # one ESM bundle (make js): an IIFE whose result is the one default export {render, decode}
    assert esm.rstrip().endswith("export default __ocrviz_bundle.default;") and esm.count("export default") == 1
    assert "var index_default = { render, decode };" in esm
    assert not re.search(r"^\s*import\s", esm, flags=re.M)                   # no imports, no CDN
    assert "cdn" not in esm.lower() and "https://" not in esm


def unpack(spec: dict) -> np.ndarray:
    """An independent decoder of the widget's compact buffers (inflate, un-shuffle, fixed point)."""
    import zlib

    raw = zlib.decompress(spec["buf"]) if spec["deflate"] else spec["buf"]
    b = np.frombuffer(raw, np.uint8)
    n = spec["shuffle"]
    if n > 1:
        b = b.reshape(n, -1).T.reshape(-1)                             # byte planes -> items
    if not spec["fixed"]:
        return b.view("<f4")
    nb = spec["fixed"] // 8
    codes = (b.reshape(-1, nb).astype(np.uint64) << (8 * np.arange(nb, dtype=np.uint64))).sum(1)
    return codes / (2 ** spec["fixed"] - 1)


def test_widget_payload_is_at_most_1_5x_the_export(tmp_path) -> None:
    """At Cityscapes scale (1024 x 2048, stride 4, K = 19) the widget ships about what the page does."""
    big = synthetic_data(h=256, w=512, k=19, output_stride=4, seed=2)
    ex = Explorer.from_data(big)
    state = ex.get_state()
    size = sum(len(v) for v in state.values() if isinstance(v, (bytes, memoryview))) \
        + sum(len(spec["buf"]) for spec in ex.packed.values())
    page = ex.save_html(tmp_path / "big.html").stat().st_size
    assert size <= 1.5 * page, (size / 2**20, page / 2**20)


def test_traits_carry_the_payload(data) -> None:
    ex = Explorer.from_data(data, width=300, overlay="errors")
    assert ex.feat_hw == [6, 10] and ex.output_stride == 4 and ex.image_hw == [24, 40]
    assert ex.selected == [3, 5]                                   # the centre cell by default
    assert ex.width == 300 and ex.overlay == "errors" and ex.mode == "ocr" and ex.hover_region == -1
    assert ex.sim_map == b"" and ex.packed["sim_map"]["fixed"] == 24           # sent compressed
    np.testing.assert_allclose(unpack(ex.packed["sim_map"]).reshape(60, 4), data.sim_map, atol=3e-8)
    assert ex.class_names == list(data.class_names) and ex.aspp_rates == list(data.aspp_rates)
    assert ex.data is data


def test_selection_is_checked_and_pixels_map_to_cells(data) -> None:
    ex = Explorer.from_data(data)
    with pytest.raises(traitlets.TraitError, match="outside the 6 x 10 feature grid"):
        ex.selected = [6, 0]
    ex.select_pixel(23, 5)
    assert ex.selected == [5, 1]
    ex.select(0, 9)
    assert ex.selected == [0, 9]
    with pytest.raises(traitlets.TraitError):
        ex.mode = "fcn"
    with pytest.raises(TypeError, match="ExplorerData"):
        Explorer.from_data({"sim_map": 1})


def test_erf_is_computed_only_with_show_erf_and_cached_with_its_exact_class_mass(data) -> None:
    calls = []

    def erf_fn(y: int, x: int) -> np.ndarray:
        calls.append((y, x))
        m = np.zeros((24, 40))                 # a pixel map: summed into cells by the widget
        m[y * 4, x * 4] = 2.0
        m[0, 0] += 2.0
        return m

    ex = Explorer.from_data(data, erf_fn=erf_fn)
    ex.select(1, 2)
    assert calls == []                          # show_erf off: nothing (OCR and ASPP are shown side by side)
    ex.show_erf = True
    assert calls == [(1, 2)] and ex.erf_cell == [1, 2] and ex.erf_status == ""
    got = np.frombuffer(ex.erf_map, np.uint8).reshape(6, 10) * ex.erf_scale
    want = np.zeros((6, 10))
    want[1, 2] = want[0, 0] = 0.5
    np.testing.assert_allclose(got, want, atol=0.5 / 510)
    # the strip's numbers travel with it: half on cell (1, 2)'s class, half on cell (0, 0)'s
    cls = data.cell_classes()
    mass = np.zeros(data.num_classes)
    mass[cls[1, 2]] += 0.5
    mass[cls[0, 0]] += 0.5
    np.testing.assert_allclose(ex.erf_mass, mass, atol=1e-12)
    ex.select(4, 4)
    ex.select(1, 2)                             # back to a cached cell: no new call
    assert calls == [(1, 2), (4, 4)] and ex.erf_cell == [1, 2]
    ex.show_erf = False
    ex.select(5, 5)
    assert calls == [(1, 2), (4, 4)]


def test_erf_failure_is_reported_not_raised(data) -> None:
    def bad(y: int, x: int) -> np.ndarray:
        raise RuntimeError("no gradient")

    ex = Explorer.from_data(data, erf_fn=bad, mode="aspp", show_erf=True)
    assert "ERF failed" in ex.erf_status and "no gradient" in ex.erf_status and ex.erf_cell == [-1, -1]


def test_explorer_runs_the_capture_itself() -> None:
    ocr = ocrviz.create_model("ocrnet", num_classes=3, widths=(8, 8, 16, 16), mid_channels=16,
                              key_channels=8, class_names=["road", "car", "sky"])
    aspp = ocrviz.create_model("aspp", num_classes=3, widths=(8, 8, 16, 16), channels=8, rates=(1, 2, 3))
    image = (np.random.default_rng(0).random((32, 48, 3)) * 255).astype(np.uint8)
    labels = np.zeros((32, 48), np.int64)
    mark = np.zeros((32, 48), bool)
    mark[8:, :20] = True
    ex = Explorer(ocr, image, labels, aspp_model=aspp, mark=mark, mark_name="cue-free")
    assert ocr.training and aspp.training                     # mode restored after the capture
    d = ex.data
    np.testing.assert_array_equal(d.mark, mark)
    assert ex.mark_name == "cue-free" and ex.mark_hw == [32, 48] and ex.mark == b""   # sent compressed:
    np.testing.assert_array_equal(unpack(ex.packed["mark"]).view(np.uint8).reshape(32, 48), mark)
    ex.overlay = "marked"
    assert d.class_names == ("road", "car", "sky") and d.aspp_rates == (1, 2, 3)
    np.testing.assert_array_equal(d.image, image)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        want = ocr.eval()(x)[0].argmax(0).numpy()
    np.testing.assert_array_equal(d.pred, want)
    np.testing.assert_allclose(d.aspp_shares.sum(1), 1.0, rtol=1e-5)
    assert ex.erf_cell == [-1, -1]                             # ERF only on demand
    ex.mode, ex.show_erf = "aspp", True                        # default erf_fn: Captum saliency of the ASPP model
    assert ex.erf_cell == ex.selected and ex.erf_status == ""
    erf = np.frombuffer(ex.erf_map, np.uint8).reshape(d.feat_hw) * ex.erf_scale
    np.testing.assert_allclose(erf.sum(), 1.0, atol=0.05)


def test_explorer_normalises_uint8_images_like_training() -> None:
    """Without a transform the model sees ImageNet-normalised input, as in training."""
    import torch

    import ocrviz
    from ocrviz.data.dataset import normalize

    torch.manual_seed(0)
    model = ocrviz.create_model("ocrnet", num_classes=4).eval()
    image = np.random.default_rng(0).integers(0, 256, size=(32, 64, 3), dtype=np.uint8)
    ex = ocrviz.Explorer(model, image)
    with torch.no_grad():
        want = model(normalize(image)[None]).argmax(1)[0].numpy()
    assert np.array_equal(ex.data.pred, want)


def test_blame_categories_match_error_blame_and_travel_in_the_payload() -> None:
    """The explorer's blame map is error_blame's, category for category, and ships packed."""
    import ocrviz
    from ocrviz.analysis import error_blame
    from ocrviz.analysis.blame import CATEGORIES
    from ocrviz.data.samples import load_sample
    from ocrviz.widgets.explorer_data import BLAME_CATEGORIES

    assert BLAME_CATEGORIES == CATEGORIES
    js = (STATIC / "explorer.js").read_text()
    assert [f'["{c}"' in js for c in CATEGORIES] == [True] * 4
    model, sample = ocrviz.load_model("toycity-ocr"), load_sample("street_0")
    ex = Explorer(model, sample.image, sample.labels)
    want = error_blame(model, sample.image, sample.labels).category
    np.testing.assert_array_equal(ex.data.blame, want)
    shipped = unpack(ex.packed["blame"]).view(np.uint8).reshape(want.shape)
    np.testing.assert_array_equal(shipped, np.where(want < 0, 255, want.astype(np.int64)))
    assert (want >= 0).any() and Explorer(model, sample.image).data.blame is None     # no labels, no blame


def test_explorer_normalises_with_the_models_own_statistics() -> None:
    """A model that carries input_mean / input_std (e.g. read from an MMSeg checkpoint's config) is fed
    with them, exactly as if the caller had passed mean= / std=; a transform= bypasses them."""
    ocr = ocrviz.create_model("ocrnet", num_classes=3, widths=(8, 8, 16, 16), mid_channels=16, key_channels=8)
    image = (np.random.default_rng(1).random((32, 48, 3)) * 255).astype(np.uint8)
    mean, std = [100.0, 110.0, 120.0], [50.0, 60.0, 70.0]
    given = Explorer(ocr, image, mean=mean, std=std).data.pixel_head.pixels
    imagenet = Explorer(ocr, image).data.pixel_head.pixels
    ocr.input_mean, ocr.input_std = mean, std
    own = Explorer(ocr, image).data.pixel_head.pixels
    np.testing.assert_array_equal(own, given)
    assert np.abs(own - imagenet).max() > 1e-4
    x = torch.from_numpy(((image / 255.0 - 0.5) / 0.25).astype(np.float32)).permute(2, 0, 1)[None]
    bypass = Explorer(ocr, image, transform=lambda a: x).data.pixel_head.pixels
    assert np.abs(bypass - own).max() > 1e-4
