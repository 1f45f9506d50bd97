"""The shipped checkpoints: load, match their model cards, and behave."""
from __future__ import annotations

import json
import re

import pytest
import torch

import ocrviz
from ocrviz.data.dataset import ToyCityDataset, val_split
from ocrviz.evaluate import evaluate
from ocrviz.train import training_stages
from ocrviz.zoo import SHIPPED, data_dir, model_card

CKPT_LIMIT_BYTES = 10 * 1024 * 1024


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_reproduces_its_model_card(name: str) -> None:
    """Evaluate on freshly generated validation scenes; stay within 0.03 of the card's mIoU."""
    card = model_card(name)
    model = ocrviz.load_model(name)
    assert not model.training and model.class_names == card["class_names"]
    split = card["val_split"]
    ds = ToyCityDataset(val_split(split["n_images"]), height=split["height"], width=split["width"])
    report = evaluate(model, ds)
    assert abs(report["miou"] - card["metrics"]["miou"]) <= 0.03, (report["miou"], card["metrics"]["miou"])
    assert abs(report["ambiguous_acc"] - card["metrics"]["ambiguous_acc"]) <= 0.03
    assert abs(report["cue_free_acc"] - card["metrics"]["cue_free_acc"]) <= 0.03


@pytest.mark.parametrize("name", SHIPPED)
def test_checkpoint_size_and_card_fields(name: str) -> None:
    path = data_dir() / "checkpoints" / f"{name}.safetensors"
    assert path.stat().st_size <= CKPT_LIMIT_BYTES
    card = json.loads(path.with_suffix(".json").read_text())
    for key in ("arch", "config", "command", "seed", "steps", "wall_time_s", "machine", "metrics"):
        assert key in card, key
    assert card["command"].startswith("python -m ocrviz.train")


def _stages(card: dict) -> list[str]:
    """The training commands of a card's chain (first stage first), with the
    per-model flags (--arch, --out, --init-from) taken out."""
    return [re.sub(r"--(arch|out|init-from) \S+ ?", "", stage["command"]).strip()
            for stage in training_stages(card)]


def test_quality_floor_and_same_schedule_for_all() -> None:
    """All three share backbone, schedule and seed, at every stage of their
    training chain; none regresses below the shipped level."""
    cards = {n: model_card(n) for n in SHIPPED}
    for name, card in cards.items():
        assert card["metrics"]["miou"] >= 0.82, name
        assert card["metrics"]["ambiguous_acc"] >= 0.92, name
        assert card["model_kwargs"] == cards["toycity-ocr"]["model_kwargs"], name
    schedules = {n: {k: v for k, v in c["config"].items() if k not in ("arch", "out", "threads", "init_from")}
                 for n, c in cards.items()}
    assert schedules["toycity-ocr"] == schedules["toycity-aspp"] == schedules["toycity-fcn"]
    stages = {n: _stages(c) for n, c in cards.items()}
    assert stages["toycity-ocr"] == stages["toycity-aspp"] == stages["toycity-fcn"], stages
    totals = {n: c.get("total_steps", c["steps"]) for n, c in cards.items()}
    assert len(set(totals.values())) == 1, totals
    # the target (met with no margin: 0.8500; the README says so)
    assert cards["toycity-ocr"]["metrics"]["miou"] >= 0.85


def test_context_decides_the_cue_free_pixels() -> None:
    """ToyCity's design goal, measured on the shipped models: on cue-free pixels
    (nothing but the ambiguous surface within the backbone's receptive field)
    the no-context FCN is far behind both context heads."""
    acc = {n: model_card(n)["metrics"]["cue_free_acc"] for n in SHIPPED}
    assert model_card("toycity-fcn")["metrics"]["cue_free_pixels"] > 100_000
    assert acc["toycity-ocr"] - acc["toycity-fcn"] >= 0.1, acc
    assert acc["toycity-aspp"] - acc["toycity-fcn"] >= 0.1, acc


def test_unknown_shipped_model_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match="toycity-ocr, toycity-aspp, toycity-fcn"):
        ocrviz.load_model("toycity-ocnet")


def test_shipped_ocr_model_captures_a_valid_sim_map() -> None:
    model = ocrviz.load_model("toycity-ocr")
    from ocrviz.data.samples import load_sample
    from ocrviz.data.dataset import normalize
    s = load_sample("street_0")
    logits, cache = ocrviz.run_with_cache(model, normalize(s.image)[None])
    assert torch.allclose(cache.sim_map.sum(-1), torch.ones(1), atol=1e-5)
    acc = (logits.argmax(1)[0].numpy() == s.labels).mean()
    assert acc > 0.8, acc


def test_readme_model_table_matches_the_model_cards() -> None:
    """The README's shipped-model table is copied from the cards; it must not drift."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for name in SHIPPED:
        m = model_card(name)["metrics"]
        rows = [line for line in readme.splitlines() if line.startswith(f"| {name} ")]
        assert len(rows) == 1, f"README has {len(rows)} table rows for {name}"
        cells = [c.strip() for c in rows[0].strip("|").split("|")]
        want = [f"{m[k]:.3f}" for k in ("miou", "ambiguous_acc", "cue_free_acc", "pixel_acc")]
        assert cells[1:5] == want, (name, cells[1:5], want)
