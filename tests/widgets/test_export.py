"""Standalone HTML export: produced atomically, small, self-contained, decodable."""
from __future__ import annotations

import re

import numpy as np
import pytest

from ocrviz.widgets import Explorer, save_html
from ocrviz.widgets import export as export_mod
from ocrviz.widgets.export import read_html_payload
from ocrviz.widgets.synthetic import synthetic_data

MB = 1024 * 1024


@pytest.fixture(scope="module")
def small():
    return synthetic_data(h=8, w=16, k=5, output_stride=8, seed=3)


def test_file_is_self_contained(tmp_path, small) -> None:
    path = save_html(small, tmp_path / "ex.html", title="a <b> & c")
    text = path.read_text()
    assert text.startswith("<!doctype html>") and "a &lt;b&gt; &amp; c" in text
    # no external scripts, styles, images or fonts; CSP forbids fetching anything
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)\s*=", text, flags=re.I)
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", text, flags=re.I)
    assert "https://" not in text and "@import" not in text and "url(" not in text
    assert "default-src 'none'" in text
    # the ESM is inlined with its export rewritten; render is called with an in-page model
    assert "export default" not in text and "const __ocrviz_widget = __ocrviz_bundle.default;" in text
    assert "__ocrviz_widget.render({ model: __ocrviz_model(state), el: host })" in text
    assert not list(tmp_path.glob(".*tmp"))                    # no temp file left behind


def test_payload_decodes_back(tmp_path, small) -> None:
    def arr(v):
        return np.frombuffer(v, "<f4") if isinstance(v, bytes) else v

    for precision, tol in (("float32", 0.0), ("fixed24", 3.1e-8), ("fixed16", 7.7e-6)):
        p = read_html_payload(save_html(small, tmp_path / f"{precision}.html", precision=precision))
        for key, want in (("sim_map", small.sim_map), ("aspp_shares", small.aspp_shares)):
            err = np.abs(arr(p[key]).astype(np.float64).reshape(want.shape) - want).max()
            assert err <= tol, (precision, key, err)
        assert p["_precision"] == {"sim_map": precision, "aspp_shares": precision}
    assert p["pred"] == small.pred.tobytes() and p["gt"] == small.gt.tobytes()
    assert p["selected"] == [4, 8] and p["mode"] == "ocr" and p["image_mime"] == "image/png"
    # small data: "auto" keeps the numbers bit-exact
    p = read_html_payload(save_html(small, tmp_path / "auto.html"))
    np.testing.assert_array_equal(arr(p["sim_map"]).reshape(small.sim_map.shape), small.sim_map)


def test_explorer_save_html_keeps_view_state_and_computed_erfs(tmp_path, small) -> None:
    ex = Explorer.from_data(small, erf_fn=lambda y, x: np.ones(small.feat_hw), mode="aspp", show_erf=True)
    ex.select(2, 3)
    ex.overlay = "errors"
    p = read_html_payload(ex.save_html(tmp_path / "ex.html"))
    assert p["selected"] == [2, 3] and p["mode"] == "aspp" and p["overlay"] == "errors"
    assert [2, 3] in p["erf_cells"] and [4, 8] in p["erf_cells"]   # the initial cell and the selected one


def test_failed_write_leaves_the_old_file_untouched(tmp_path, small, monkeypatch) -> None:
    path = tmp_path / "ex.html"
    path.write_text("old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(export_mod.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        save_html(small, path)
    assert path.read_text() == "old"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["ex.html"]


def test_bad_options_are_rejected(tmp_path, small) -> None:
    with pytest.raises(ValueError, match="precision=.half."):
        save_html(small, tmp_path / "x.html", precision="half")
    with pytest.raises(ValueError, match="image_format='gif'"):
        save_html(small, tmp_path / "x.html", image_format="gif")


def test_size_target_for_128x256_cells_and_19_classes(tmp_path) -> None:
    """The 3 MiB target at Cityscapes scale (1024 x 2048 image, stride 8); sizes are reported."""
    big = synthetic_data(h=128, w=256, k=19, output_stride=8, seed=0)
    path = save_html(big, tmp_path / "big.html")
    size = path.stat().st_size
    p = read_html_payload(path)
    chosen = p["_precision"]
    print(f"\nexport size 128x256 cells, K=19 (auto precision {chosen}): {size / MB:.2f} MiB")
    assert size <= 3 * MB, f"{size / MB:.2f} MiB"
    # the finest precision that fits was used, and its error is what the footer says
    text = path.read_text()
    note = re.search(r"works offline; printed numbers (.*?)\.", text).group(1)
    err = np.abs(p["sim_map"].reshape(big.sim_map.shape) - big.sim_map).max()
    assert err <= {"within 3e-8 of the captured values": 3.1e-8,
                   "within 8e-6 of the captured values": 7.7e-6}[note], note
    exact = save_html(big, tmp_path / "exact.html", precision="float32").stat().st_size
    print(f"export size with float32 numbers: {exact / MB:.2f} MiB")
