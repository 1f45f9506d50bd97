"""load_checkpoint / save_checkpoint: formats, wrapper layouts, safety, mismatch reports."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from ocrviz.checkpoints import (CheckpointError, CheckpointFormatError, CheckpointMismatchError,
                                CheckpointNotFoundError, UnsafeCheckpointError, load_checkpoint,
                                save_checkpoint)
from ocrviz.models.hrnet import HRNetW48OCR
from ocrviz.models.ocr import OCRHead


def hrnet(num_classes: int = 5, seed: int = 0) -> HRNetW48OCR:
    """A tiny HRNet-OCR with the official key names and BN statistics that are not the defaults."""
    torch.manual_seed(seed)
    model = HRNetW48OCR(num_classes=num_classes, width=4, ocr_mid_channels=16, ocr_key_channels=8).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.num_batches_tracked.fill_(seed + 7)
    return model


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_unchanged(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = model.state_dict()
    assert [k for k in before if not torch.equal(before[k], after[k])] == []


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    assert [k for k in sa if not torch.equal(sa[k], sb[k])] == []


class Evil:
    """Unpickling this would run a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(1, 3, 32, 48)


@pytest.mark.parametrize("name", ["w.safetensors", "w.pth", "w.pt"])
def test_round_trip_gives_identical_outputs(tmp_path, x, name):
    source, target = hrnet(seed=1), hrnet(seed=2)
    assert not torch.equal(source.conv1.weight, target.conv1.weight)
    with torch.no_grad():
        expected = source(x)
    path = save_checkpoint(source, tmp_path / name, {"dataset": "toy", "palette": [(1, 2, 3)]})
    meta = load_checkpoint(target, path)
    with torch.no_grad():
        assert torch.equal(target(x), expected)
    assert_same_weights(target, source)
    assert meta["dataset"] == "toy" and meta["palette"] == [[1, 2, 3]]     # JSON types, whatever the format
    assert meta["arch"] == "hrnet_w48_ocr" and meta["num_classes"] == 5
    assert [p.name for p in tmp_path.iterdir()] == [name]                  # no temporary file left behind


def test_torch_files_are_read_with_weights_only(tmp_path, monkeypatch):
    path = save_checkpoint(hrnet(), tmp_path / "w.pth")
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_checkpoint(hrnet(seed=3), path)
    assert calls and all(c.get("weights_only") is True for c in calls)


@pytest.mark.parametrize("layout", ["official", "dataparallel", "state_dict", "model", "legacy"])
def test_wrapper_layouts_and_prefixes(tmp_path, layout):
    source, target = hrnet(seed=4), hrnet(seed=5)
    sd = source.state_dict()
    path = tmp_path / "ckpt.pth"
    if layout == "official":        # HRNet-OCR release: FullModel(model, loss) behind 'model.'
        payload = {"model." + k: v for k, v in sd.items()}
        payload["loss.criterion.weight"] = torch.ones(5)
        torch.save(payload, path, _use_new_zipfile_serialization=False)   # torch 1.1 era file
    elif layout == "dataparallel":
        torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}, "epoch": 3}, path)
    elif layout == "state_dict":
        torch.save({"state_dict": dict(sd), "meta": {"iter": 160000}}, path)
    elif layout == "model":
        torch.save({"model": {"module.model." + k: v for k, v in sd.items()}}, path)
    else:
        torch.save(dict(sd), path, _use_new_zipfile_serialization=False)
    meta = load_checkpoint(target, path)
    assert_same_weights(target, source)
    assert meta == ({"iter": 160000} if layout == "state_dict" else {})


def test_prefixed_safetensors_and_missing_num_batches_tracked(tmp_path):
    from safetensors.torch import save_file

    source, target = hrnet(seed=6), hrnet(seed=7)
    sd = {"model." + k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(sd, str(tmp_path / "w.safetensors"), metadata={"source": "elsewhere"})
    assert load_checkpoint(target, tmp_path / "w.safetensors") == {"source": "elsewhere"}
    loaded, expected = target.state_dict(), source.state_dict()
    assert [k for k in sd if not torch.equal(loaded[k[len("model."):]], expected[k[len("model."):]])] == []
    assert int(target.bn1.num_batches_tracked) == 7 + 7                   # absent from the file: kept


@pytest.mark.parametrize("how", ["zip", "legacy", "raw_pickle"])
def test_malicious_pickle_is_refused_and_never_executed(tmp_path, how):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pth"
    if how == "zip":
        torch.save({"state_dict": {"conv1.weight": Evil(marker)}}, path)
    elif how == "legacy":
        torch.save(Evil(marker), path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps({"conv1.weight": Evil(marker)}, protocol=2))
    model = hrnet()
    before = snapshot(model)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint(model, path)
    message = str(info.value)
    assert str(path) in message
    assert "Python objects beyond tensors" in message
    assert "never executes pickle code" in message
    assert "save_checkpoint" in message and "safetensors" in message
    assert not marker.exists()
    assert_unchanged(model, before)


def test_the_malicious_payload_is_live(tmp_path):
    # Control for the test above: a plain unpickler does run the payload (a harmless touch).
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps(Evil(marker)))
    assert marker.exists()


def test_unexpected_missing_and_shape_conflicts_are_listed(tmp_path):
    model = hrnet()
    before = snapshot(model)
    sd = hrnet(seed=8).state_dict()
    sd["conv1.weigth"] = sd.pop("conv1.weight")                   # a typo
    sd.pop("aux_head.0.bias")                                       # missing
    sd["layer1.0.conv2.weight"] = torch.zeros(64, 64, 1, 1)         # shape conflict (late in the dict)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(model, tmp_path / "bad.pth")
    err = info.value
    text = str(err)
    assert "nothing was loaded" in text
    assert "missing from the checkpoint (2)" in text and "    conv1.weight" in text and "aux_head.0.bias" in text
    assert "conv1.weigth (did you mean conv1.weight?)" in text
    assert "layer1.0.conv2.weight: checkpoint 64x64x1x1 vs model 64x64x3x3" in text
    assert err.missing == ["conv1.weight", "aux_head.0.bias"]
    assert err.unexpected == ["conv1.weigth"]
    assert err.shape_conflicts == [("layer1.0.conv2.weight", (64, 64, 1, 1), (64, 64, 3, 3))]
    assert_unchanged(model, before)                                # the matching entries were NOT loaded


def test_wrong_number_of_classes_has_a_specific_message(tmp_path):
    path = save_checkpoint(hrnet(num_classes=19), tmp_path / "cs.safetensors")
    model = hrnet(num_classes=5)
    before = snapshot(model)
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(model, path, strict=False)                 # shape conflicts fail even when lax
    assert ("checkpoint has 19 classes (cls_head.weight 19x16x1x1), the model 5; "
            "create the model with num_classes=19") in str(info.value)
    assert {k for k, _, _ in info.value.shape_conflicts} == {
        "cls_head.weight", "cls_head.bias", "aux_head.3.weight", "aux_head.3.bias"}
    assert_unchanged(model, before)


def test_class_message_for_the_toy_head_layout(tmp_path):
    path = save_checkpoint(OCRHead(12, 7, mid_channels=8, key_channels=4), tmp_path / "h.pth")
    with pytest.raises(CheckpointMismatchError, match=r"checkpoint has 7 classes \(cls_head.weight 7x8x1x1\), "
                                                      r"the model 3; create the model with num_classes=7"):
        load_checkpoint(OCRHead(12, 3, mid_channels=8, key_channels=4), path)


def test_strict_false_loads_the_matching_part_and_warns(tmp_path):
    source, target = hrnet(seed=9), hrnet(seed=10)
    sd = dict(source.state_dict())
    dropped = sd.pop("cls_head.bias")
    sd["extra.weight"] = torch.zeros(3)
    torch.save(sd, tmp_path / "partial.pth")
    kept = target.cls_head.bias.clone()
    with pytest.raises(CheckpointMismatchError, match="strict=False"):
        load_checkpoint(target, tmp_path / "partial.pth")
    with pytest.warns(UserWarning, match="1 model entries kept their values.*1 checkpoint entries ignored"):
        load_checkpoint(target, tmp_path / "partial.pth", strict=False)
    assert torch.equal(target.cls_head.bias, kept) and not torch.equal(kept, dropped)
    assert torch.equal(target.conv1.weight, source.conv1.weight)


def test_a_checkpoint_of_another_architecture_is_named_as_such(tmp_path):
    torch.save({"encoder.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointMismatchError, match="another architecture"):
        load_checkpoint(hrnet(), tmp_path / "other.pth", strict=False)


@pytest.mark.parametrize(("name", "content"), [
    ("photo.png", b"\x89PNG\r\n\x1a\n" + bytes(64)),
    ("notes.pth", b"these are not weights\n"),
    ("empty.safetensors", b""),
])
def test_files_that_are_not_checkpoints(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CheckpointFormatError) as info:
        load_checkpoint(hrnet(), path)
    assert str(path) in str(info.value)
    assert ".safetensors" in str(info.value) and ".pth" in str(info.value)


def test_non_tensor_payload_and_missing_file(tmp_path):
    torch.save({"epoch": 3, "lr": 0.01}, tmp_path / "state.pth")
    with pytest.raises(CheckpointFormatError, match="not tensors"):
        load_checkpoint(hrnet(), tmp_path / "state.pth")
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(CheckpointNotFoundError) as info:
        load_checkpoint(hrnet(), missing)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, CheckpointError)
    assert str(missing) in str(info.value) and "safetensors" in str(info.value)


def test_save_refuses_unknown_extension_and_non_json_metadata(tmp_path):
    with pytest.raises(ValueError, match=r"'\.npz'.*\.safetensors"):
        save_checkpoint(hrnet(), tmp_path / "w.npz")
    with pytest.raises(TypeError, match="JSON"):
        save_checkpoint(hrnet(), tmp_path / "w.pth", {"tensor": torch.zeros(1)})
    assert list(tmp_path.iterdir()) == []


def test_dataparallel_training_layout_loads(tmp_path, x):
    """Official training runs under DataParallel: module.model.* plus module.loss.* buffers."""
    source, target = hrnet(seed=11), hrnet(seed=12)
    sd = {f"module.model.{k}": v for k, v in source.state_dict().items()}
    sd["module.loss.criterion.weight"] = torch.rand(5)
    torch.save({"epoch": 3, "state_dict": sd}, tmp_path / "checkpoint.pth.tar")
    load_checkpoint(target, tmp_path / "checkpoint.pth.tar")
    assert_same_weights(target, source)


def test_mismatch_on_an_mmseg_checkpoint_is_fast_and_points_to_from_checkpoint(tmp_path, reference_dir, monkeypatch):
    """1888 MMSeg keys against the 1890 of an HRNet-W18: 110 s when difflib compared all with all."""
    import difflib
    import json
    import time

    entries = json.loads((reference_dir / "mmseg_ocrnet_hr18_cityscapes_state_dict.json").read_text())["state_dict"]
    torch.save({"meta": {"CLASSES": ["c"] * 19}, "state_dict": {k: torch.zeros(s) for k, s in entries}},
               tmp_path / "mmseg.pth")
    model = HRNetW48OCR(num_classes=19, width=18)
    compared = []
    real = difflib.get_close_matches

    def counting(word, possibilities, *args, **kwargs):
        compared.append(len(possibilities))
        return real(word, possibilities, *args, **kwargs)
    monkeypatch.setattr(difflib, "get_close_matches", counting)
    start = time.perf_counter()
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(model, tmp_path / "mmseg.pth")
    elapsed = time.perf_counter() - start
    assert elapsed < 5, f"rejecting took {elapsed:.1f} s"
    assert len(compared) <= 20 and sum(compared) <= 20 * 50          # listed keys x capped candidates
    text = str(info.value)
    assert "these look like MMSeg OCRNet (HRNetV2) keys: use ocrviz.from_checkpoint(path)" in text
    assert "backbone.conv1.weight (did you mean conv1.weight?)" in text
    assert len(info.value.unexpected) == 1888 and "... and 1868 more" in text


def test_an_official_checkpoint_of_another_width_points_to_from_checkpoint(tmp_path):
    torch.save(HRNetW48OCR(num_classes=5, width=8, ocr_mid_channels=16, ocr_key_channels=8).state_dict(),
               tmp_path / "w8.pth")
    with pytest.raises(CheckpointMismatchError, match="official HRNet-OCR keys: use ocrviz.from_checkpoint"):
        load_checkpoint(hrnet(), tmp_path / "w8.pth")


@pytest.mark.parametrize("name", ["toycity-ocr", "toycity-aspp"])
def test_a_saved_shipped_model_loads_back_as_the_same_function(name, tmp_path) -> None:
    """save_checkpoint records the builder's options (the shipped models' undilated backbone):
    from_checkpoint rebuilds the very same network, not one with the default dilation."""
    import ocrviz

    model = ocrviz.load_model(name)
    back = ocrviz.from_checkpoint(ocrviz.save_checkpoint(model, tmp_path / f"{name}.safetensors"))
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        torch.testing.assert_close(back(x), model(x), rtol=0, atol=0)
