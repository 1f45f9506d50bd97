"""A tiny training run end to end: loss, card, checkpoint, reload; config validation."""
from __future__ import annotations

import json

import pytest
import torch

import ocrviz
from ocrviz.train import TrainConfig, main, poly_lr, train, training_stages


def test_tiny_run_writes_a_loadable_checkpoint_and_card(tmp_path) -> None:
    out = tmp_path / "tiny-ocr"
    cfg = TrainConfig(arch="ocrnet", steps=4, batch_size=2, height=64, width=128, val_images=2, val_every=2,
                      threads=1, out=str(out), model_kwargs={"dilated": False})
    result = train(cfg, progress=False, command="python -m ocrviz.train --steps 4")
    assert len(result.losses) == 4 and all(l > 0 for l in result.losses)
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["steps"] == 4 and card["arch"] == "ocrnet" and card["config"]["batch_size"] == 2
    assert card["model_kwargs"] == {"dilated": False} and [h["step"] for h in card["history"]] == [2]
    assert 0 <= card["metrics"]["miou"] <= 1
    model = ocrviz.create_model("ocrnet", num_classes=card["num_classes"], dilated=False).eval()
    ocrviz.load_checkpoint(model, result.checkpoint)
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        assert torch.allclose(model(x), result.model(x), atol=1e-6)


def test_same_seed_same_first_losses() -> None:
    cfg = TrainConfig(arch="fcn", steps=2, batch_size=2, height=64, width=128, val_images=1, val_every=5,
                      threads=1)
    a = train(cfg, progress=False).losses
    b = train(cfg, progress=False).losses
    assert a == b


@pytest.mark.parametrize("kwargs, message", [
    ({"arch": "hrnet_w48_ocr"}, "not trainable here"),
    ({"optimizer": "adam"}, "choose one of"),
    ({"steps": 0}, "steps=0 must be >= 1"),
    ({"crop_height": 999}, "must fit in 256x512"),
])
def test_bad_config_is_explained(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_poly_schedule_ends_at_zero() -> None:
    assert poly_lr(1.0, 0, 10) == 1.0 and poly_lr(1.0, 10, 10) == 0.0 and 0 < poly_lr(1.0, 5, 10) < 1


def test_cli_parses_model_kwargs(monkeypatch, tmp_path, capsys) -> None:
    assert main(["--arch", "fcn", "--steps", "1", "--batch-size", "2", "--height", "32", "--width", "64",
                 "--val-images", "1", "--threads", "1", "--model-kwargs", '{"dilated": false}',
                 "--out", str(tmp_path / "cli")]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["checkpoint"].endswith("cli.safetensors")
    assert json.loads((tmp_path / "cli.json").read_text())["model_kwargs"] == {"dilated": False}


def test_init_from_continues_a_run(tmp_path) -> None:
    """--init-from: starts from the checkpoint's weights, trains on the scenes after
    the first run's, and the card records the chain and the totals."""
    first = train(TrainConfig(arch="fcn", steps=2, batch_size=2, height=32, width=64, val_images=1, threads=1,
                              out=str(tmp_path / "a"), model_kwargs={"dilated": False}), progress=False)
    cfg = TrainConfig(arch="fcn", steps=3, batch_size=2, height=32, width=64, val_images=1, threads=1, lr=1e-12,
                      out=str(tmp_path / "b"), model_kwargs={"dilated": False}, init_from=str(first.checkpoint))
    second = train(cfg, progress=False)
    card = second.card
    assert card["steps"] == 3 and card["total_steps"] == 5
    assert first.card["scenes_end"] == 4 and card["scenes_end"] == 4 + 3 * 2
    assert card["init_from"]["path"] == str(first.checkpoint) and card["init_from"]["steps"] == 2
    assert card["init_from"]["config"] == first.card["config"] and card["init_from"]["history"] == first.card["history"]
    assert card["total_wall_time_s"] >= first.card["wall_time_s"]
    # lr ~ 0: the conv weights are still the first run's (BN running statistics do move)
    a, b = first.model.state_dict(), second.model.state_dict()
    convs = [k for k in a if k.endswith("weight") and a[k].ndim == 4]
    assert convs and all(torch.allclose(a[k], b[k], atol=1e-6) for k in convs)
    # and a fresh model does differ from it
    fresh = ocrviz.create_model("fcn", num_classes=9, dilated=False).state_dict()
    assert not torch.allclose(fresh[convs[0]], b[convs[0]])


def test_init_from_refuses_another_architecture(tmp_path) -> None:
    first = train(TrainConfig(arch="fcn", steps=1, batch_size=2, height=32, width=64, val_images=1, threads=1,
                              out=str(tmp_path / "a"), model_kwargs={"dilated": False}), progress=False)
    with pytest.raises(ValueError, match="arch='fcn'.*arch='aspp'"):
        train(TrainConfig(arch="aspp", steps=1, batch_size=2, height=32, width=64, val_images=1, threads=1,
                          model_kwargs={"dilated": False}, init_from=str(first.checkpoint)), progress=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train(TrainConfig(arch="fcn", steps=1, init_from=str(tmp_path / "missing.safetensors")), progress=False)


def test_training_stages_lists_the_chain_first_stage_first() -> None:
    first = {"command": "a", "steps": 2}
    second = {"command": "b", "steps": 3, "init_from": first}
    third = {"command": "c", "steps": 1, "init_from": second}
    assert [s["command"] for s in training_stages(third)] == ["a", "b", "c"]
    assert training_stages(first) == [first]
