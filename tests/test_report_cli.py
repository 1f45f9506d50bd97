"""``ocrviz report`` with several models, and ``ocrviz explain``'s index: numbers against independent computations.

Two shipped models (toycity-ocr, toycity-aspp) on four ToyCity validation
scenes at 64 x 128.  The per-model and per-image mIoUs are recomputed here
with a plain forward, ImageNet normalisation written out and a bincount
confusion matrix (not ``ocrviz.evaluate``); the bootstrap interval must hold
the model's mIoU, and a difference between the models is the difference of
their independent mIoUs.
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ocrviz.cli import main

H, W, N = 64, 128, 4
MODELS = ("toycity-ocr", "toycity-aspp")
MEAN, STD = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)


def _scenes():
    from ocrviz.data.dataset import val_split
    from ocrviz.data.toycity import make_scene

    return [make_scene(int(s), H, W) for s in val_split(N)]


def _independent(name: str, scenes) -> tuple[float, list[float]]:
    """(mIoU over the set, per-image mIoUs): plain forward, argmax, bincount confusion, mean IoU over present classes."""
    import ocrviz

    model = ocrviz.load_model(name).eval()
    k = model.num_classes
    total = np.zeros((k, k), np.int64)
    per = []

    def miou(c: np.ndarray) -> float:
        tp = np.diag(c).astype(float)
        union = c.sum(0) + c.sum(1) - tp
        return float(np.mean(tp[union > 0] / union[union > 0]))
    for s in scenes:
        x = (s.image.astype(np.float32) / 255 - MEAN) / STD                          # H x W x 3
        with torch.no_grad():
            logits = model(torch.from_numpy(x.transpose(2, 0, 1).copy())[None])      # 1 x K x H x W
        pred = logits[0].argmax(0).numpy().ravel()
        lab = s.labels.astype(np.int64).ravel()
        keep = lab != 255
        c = np.bincount(lab[keep] * k + pred[keep], minlength=k * k).reshape(k, k)
        total += c
        per.append(miou(c))
    return miou(total), per


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    argv = ["report", "toycity", *[a for m in MODELS for a in ("--model", m)], "--images", N, "--height", H,
            "--width", W, "--quiet", "--bootstrap", 400, "--explain-worst", 1, "-o", out / "r.html", "--json", out / "r.json"]
    code = main([str(a) for a in argv])
    assert code == 0
    return out, json.loads((out / "r.json").read_text()), (out / "r.html").read_text(encoding="utf-8")


def test_two_models_miou_equals_an_independent_evaluation_and_its_ci_holds_it(report) -> None:
    _, rep, _ = report
    scenes = _scenes()
    assert [m["name"] for m in rep["models"]] == list(MODELS) and rep["n_images"] == N
    want = {}
    for m in rep["models"]:
        miou, per = _independent(m["name"], scenes)
        want[m["name"]] = miou
        assert m["miou"] == pytest.approx(miou, abs=1e-12), m["name"]
        lo, hi = m["miou_ci"]
        assert lo <= miou <= hi and hi - lo > 0, (m["name"], lo, miou, hi)
        assert len(m["per_image"]) == N
        assert [e["miou"] for e in m["per_image"]] == pytest.approx(per, abs=1e-12)
        assert [e["image"] for e in m["per_image"]] == [f"scene {s.seed}" for s in scenes]
    assert len(set(want.values())) == 2                      # two different models, not one read twice
    (delta,) = rep["deltas"]
    assert delta["name"] == "toycity-aspp" and delta["vs"] == "toycity-ocr"
    assert delta["miou"] == pytest.approx(want["toycity-aspp"] - want["toycity-ocr"], abs=1e-12)
    assert delta["miou_ci"][0] <= delta["miou"] <= delta["miou_ci"][1]
    assert rep["bootstrap"]["n_boot"] == 400 and "4 images" in rep["bootstrap"]["text"]


def test_the_attention_figures_come_with_chance_levels_and_intervals(report) -> None:
    _, rep, page = report
    ocr, aspp = rep["models"]
    ar = ocr["analyses"]["attention_report"]
    assert ar["chance"]["top_is_true"] == pytest.approx(1 / 9) and ar["chance"]["effective_regions"] == 9
    for key in ("miou", "miou_uniform_sim", "effective_regions", "top_is_true"):
        lo, hi = ar["ci"][key]
        assert lo <= ar["dict"][key] + 1e-12 and ar["dict"][key] <= hi + 1e-12, key
    assert ar["dict"]["miou"] == pytest.approx(ocr["miou"], abs=1e-12)      # the same images, the same forward
    # per-image attention figures add up to the set's (cells are equal in number in every image)
    assert np.mean([e["effective_regions"] for e in ocr["per_image"]]) == pytest.approx(ar["dict"]["effective_regions"])
    assert "context_flow" in ocr["analyses"] and ocr["analyses"]["context_flow"]["dict"]["aspp_mass"] is not None
    # the ASPP model: one line saying what was skipped and why, no analyses
    assert aspp["analyses"] == {} and "OCR" in aspp["skipped"] and len(aspp["skipped"]) < 200
    # the page: chance levels, definitions, verdicts, figures; offline
    text = html.unescape(page)
    assert "1/K = 11%" in text and "0.111 (1/K)" in text and "9.000 (uniform rows)" in text
    assert "KL divergence of a cell's sim row from the uniform row" in text
    assert "Does the relation matter?" in text and "toycity-aspp: attention report and context flow skipped" in text
    assert page.count("<svg") >= 7 and "OCR context mass" in text and "ASPP tap mass" in text
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert not re.search(r"""\b(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert not re.search(r"<script", page, re.I), "the report page needs no script"


def test_worst_images_link_to_their_explain_pages(report) -> None:
    out, rep, page = report
    links = {e["index"]: e["explain"] for e in rep["models"][0]["per_image"] if e["explain"]}
    worst = {m["worst"][0] for m in rep["models"]}
    assert set(links) == worst
    for i, href in links.items():
        assert f'href="{href}"' in page
        sub = (out / href).read_text(encoding="utf-8")
        assert "ocrviz-data-" in sub and f"report image #{i}" in sub
        assert not re.search(r"<script[^>]*\bsrc\s*=", sub, re.I)
    per = rep["models"][0]["per_image"]
    assert rep["models"][0]["worst"][0] == min(range(N), key=lambda i: per[i]["miou"])


def test_explain_on_several_images_heads_the_page_with_an_index(tmp_path, capsys) -> None:
    paths = []
    for s in _scenes()[:2]:
        paths.append(tmp_path / f"s{s.seed}.png")
        Image.fromarray(s.image).save(paths[-1])
    assert main(["explain", *map(str, paths), "--model", "toycity-ocr", "--quiet", "-o", str(tmp_path / "e.html")]) == 0
    page = (tmp_path / "e.html").read_text(encoding="utf-8")
    for i, p in enumerate(paths):
        assert f'href="#image-{i}"' in page and f'<section id="image-{i}">' in page and p.name in page
    assert "chance 1/K = 11.1 %" in page and "1/K = 11.1 %" in page
    assert page.count("what it is") == 2          # each image's summary table defines its fields


def test_progress_bars_know_their_total(tmp_path, capsys) -> None:
    argv = ["report", "toycity", "--model", "toycity-ocr", "--images", "2", "--height", str(H), "--width", str(W),
            "--bootstrap", "50", "--explain-worst", "0", "-o", str(tmp_path / "p.html")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    for bar in ("evaluate", "attention_report", "context_flow"):
        assert re.search(bar + r": 100%.*2/2", err), (bar, err[-600:])
    assert not re.search(r"\d+img \[", err)                  # a bar without a total reads "0img [00:00, ?img/s]"
    assert not list(tmp_path.glob("*_explain"))               # --explain-worst 0: no pages
