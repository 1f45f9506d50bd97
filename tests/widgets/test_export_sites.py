"""save_html with other heads' context sites: the site each panel has picked travels in the page
(``site_pick``), and ``max_bytes`` counts the site maps: the page stays under it, sites travel in
order while they fit, and one left out says in its entry how large a budget would keep it."""
from __future__ import annotations

import json

import pytest
import torch
import traitlets

import ocrviz
from ocrviz.widgets.export import MAX_BYTES, SITE_BYTES, read_html_payload


@pytest.fixture(scope="module")
def cc_explorer():
    """Explorer(toycity-cc, street): three sites (two criss-cross passes, their rollout), no OCR."""
    from ocrviz.data.toycity import make_scene
    from ocrviz.widgets import Explorer

    torch.set_num_threads(1)
    scene = make_scene(3, 256, 512)
    return Explorer(ocrviz.load_model("toycity-cc"), scene.image, scene.labels, selected=[9, 50])


def _entry_bytes(e: dict) -> int:
    return len(json.dumps(e, separators=(",", ":")))


def test_site_pick_travels_in_the_saved_page(cc_explorer, tmp_path):
    ex = cc_explorer
    assert [len(hd["sites"]) for hd in ex.sites] == [3]
    ex.site_pick = [2]
    try:
        got = read_html_payload(ex.save_html(tmp_path / "cc.html"))
    finally:
        ex.site_pick = []
    assert got["site_pick"] == [2]
    assert [e["site"] for e in got["sites"][0]["sites"]] == [e["site"] for e in ex.sites[0]["sites"]]
    with pytest.raises(traitlets.TraitError, match="one site index per head"):
        ex.site_pick = [3]
    with pytest.raises(traitlets.TraitError, match="one site index per head"):
        ex.site_pick = [0, 0]


def test_max_bytes_counts_the_site_maps(cc_explorer, tmp_path):
    ex = cc_explorer
    entries = ex.sites[0]["sites"]
    sizes = [_entry_bytes(e) for e in entries]
    # default: all three sites travel, within 3 MiB + 16 MiB
    full = tmp_path / "full.html"
    ex.save_html(full)
    got = read_html_payload(full)
    assert all("why" not in e for e in got["sites"][0]["sites"])
    assert full.stat().st_size <= MAX_BYTES + SITE_BYTES
    # a budget that holds the two passes but not the rollout (the largest, last): the rollout is left out
    base = full.stat().st_size - sum(sizes)
    budget = base + sizes[0] + sizes[1] + sizes[2] // 2
    assert sizes[2] // 2 > 8192                      # the margin is larger than the page's own slack
    part = tmp_path / "part.html"
    ex.save_html(part, max_bytes=budget)
    got = read_html_payload(part)
    kept = got["sites"][0]["sites"]
    assert part.stat().st_size <= budget
    assert [("why" in e) for e in kept] == [False, False, True]
    assert kept[0] == entries[0] and kept[1] == entries[1]          # the passes unchanged
    assert kept[2]["title"] == entries[2]["title"] and "maps" not in kept[2]
    assert "max_bytes" in kept[2]["why"] and "did not fit" in kept[2]["why"]
    assert "left out to stay under max_bytes" in part.read_text()
    # the sentence's suggestion is enough
    mib = int(kept[2]["why"].split("max_bytes=")[1].split(" ")[0])
    again = read_html_payload(ex.save_html(tmp_path / "again.html", max_bytes=mib * 1024 * 1024))
    assert all("why" not in e for e in again["sites"][0]["sites"])
    with pytest.raises(ValueError, match="max_bytes"):
        ex.save_html(tmp_path / "bad.html", max_bytes=0)
