"""Metrics checked against hand-computed values and a brute-force loop."""
from __future__ import annotations

import numpy as np
import pytest

from ocrviz.evaluate import confusion_matrix, metrics_from_confusion


def test_confusion_matrix_hand_example() -> None:
    target = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    conf = confusion_matrix(pred, target, 3)
    assert conf.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]
    m = metrics_from_confusion(conf, ["a", "b", "c"])
    # IoU a = 1/(2+1-1)=0.5, b = 2/(2+3-2)=2/3, c = 1
    assert m["per_class_iou"] == {"a": 0.5, "b": round(2 / 3, 4), "c": 1.0}
    assert m["miou"] == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    assert m["pixel_acc"] == pytest.approx(4 / 5)


def test_confusion_matrix_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    target = rng.integers(0, 6, size=(40, 50))
    target[rng.random(target.shape) < 0.1] = 255
    pred = rng.integers(0, 6, size=(40, 50))
    conf = confusion_matrix(pred, target, 6)
    brute = np.zeros((6, 6), int)
    for t, p in zip(target.ravel(), pred.ravel()):
        if t != 255:
            brute[t, p] += 1
    assert (conf == brute).all()


def test_absent_classes_do_not_count_in_miou() -> None:
    conf = np.array([[5, 0, 0], [0, 5, 0], [0, 0, 0]])
    m = metrics_from_confusion(conf)
    assert m["miou"] == 1.0 and m["per_class_iou"]["2"] is None


def test_bad_labels_are_reported() -> None:
    with pytest.raises(ValueError, match=r"class ids \[7\] outside 0..2"):
        confusion_matrix(np.zeros(3), np.array([0, 7, 1]), 3)
    with pytest.raises(ValueError, match="pixels"):
        confusion_matrix(np.zeros(3), np.zeros(4), 3)


@pytest.mark.parametrize("ignore", [True, False], ids=["with-ignore-pixels", "all-labels-valid"])
def test_evaluate_ambiguity_breakdown_matches_brute_force(ignore: bool) -> None:
    """evaluate() on a fixed-prediction model: per-kind and cue-free accuracies
    equal the counts done by hand with numpy (with ignore pixels, and without: then
    evaluate counts without masking)."""
    import torch

    from ocrviz.evaluate import evaluate

    rng = np.random.default_rng(0)
    k, h, w = 3, 8, 10
    preds = torch.from_numpy(rng.integers(0, k, (4, h, w)))

    class Fixed(torch.nn.Module):
        num_classes = k

        def forward(self, x):                      # B x 3 x H x W -> B x K x H x W one-hot logits
            idx = x[:, 0, 0, 0].long()
            return torch.nn.functional.one_hot(preds[idx], k).permute(0, 3, 1, 2).float()

    items = []
    for i in range(4):
        labels = torch.from_numpy(rng.integers(0, k, (h, w)))
        if ignore:
            labels[0, :3] = 255
        ambiguity = torch.from_numpy(rng.integers(0, 4, (h, w)).astype(np.uint8))
        cue = (ambiguity > 0) & torch.from_numpy(rng.random((h, w)) < 0.5)
        image = torch.full((3, h, w), float(i))
        items.append(dict(image=image, labels=labels, ambiguous=ambiguity > 0, ambiguity=ambiguity, cue_free=cue))
    rep = evaluate(Fixed(), items, batch_size=3)
    lab = torch.stack([it["labels"] for it in items])
    amb = torch.stack([it["ambiguity"] for it in items])
    cue = torch.stack([it["cue_free"] for it in items])
    ok, valid = preds == lab, lab != 255

    def acc(mask):
        mask = mask & valid
        return ok[mask].sum().item() / mask.sum().item()
    assert rep["ambiguous_acc"] == pytest.approx(acc(amb > 0))
    for code, kind in enumerate(["window", "surface", "panel"], 1):
        assert rep["ambiguous_acc_by_kind"][kind] == pytest.approx(acc(amb == code))
    assert rep["cue_free_acc"] == pytest.approx(acc(cue))
    assert rep["cue_free_pixels"] == int((cue & valid).sum())
    assert rep["pixel_acc"] == pytest.approx(acc(torch.ones_like(valid)))
    brute = np.zeros((k, k), int)
    np.add.at(brute, (lab[valid].numpy(), preds[valid].numpy()), 1)
    assert rep["confusion"] == brute.tolist()


def test_cli_prints_the_table_and_rejects_unknown_names(capsys) -> None:
    from ocrviz.evaluate import main

    main(["toycity-fcn", "toycity-ocr", "--images", "2", "--threads", "1", "--soft-regions"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| model | mIoU |") and out[2].startswith("| toycity-fcn | 0.")
    assert [line.split("|")[1].strip() for line in out[2:]] == ["toycity-fcn", "toycity-ocr",
                                                                "toycity-ocr (soft regions)"]
    assert all(len(line.split("|")) == len(out[0].split("|")) for line in out[2:])
    with pytest.raises(ValueError, match="toycity-ocr, toycity-aspp, toycity-fcn"):
        main(["toycity-ocnet"])


def test_aux_scores_the_soft_regions_and_needs_an_aux_head() -> None:
    """aux=True scores OCRNet's auxiliary output (checked against a direct argmax);
    a model without an auxiliary head is refused with a clear message."""
    import torch

    import ocrviz
    from ocrviz.data.dataset import ToyCityDataset, val_split
    from ocrviz.evaluate import evaluate

    torch.manual_seed(0)
    ocr = ocrviz.create_model("ocrnet", num_classes=9, widths=(8, 8, 16, 16), mid_channels=16, key_channels=8).eval()
    ds = ToyCityDataset(val_split(2), height=64, width=128)
    rep = evaluate(ocr, ds, aux=True)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    with torch.no_grad():
        want = ocr(batch["image"], return_aux=True)[1].argmax(1)
    assert rep["pixel_acc"] == pytest.approx((want == batch["labels"]).float().mean().item())
    fcn = ocrviz.create_model("fcn", num_classes=9, widths=(8, 8, 16, 16), channels=8).eval()
    with pytest.raises(ValueError, match="no auxiliary head"):
        evaluate(fcn, ds, aux=True)


# ---- speed fixes: same results ------------------------------------------------------------------

def _reference_evaluate(model, items, k):
    """evaluate() as it was before the speed fixes: argmax(1), numpy confusion, per-batch masks."""
    import torch

    from ocrviz.data.toycity import AMBIGUITY_KINDS
    from ocrviz.evaluate import IGNORE_INDEX

    conf = np.zeros((k, k), np.int64)
    hits = dict.fromkeys(["ambiguous", "cue_free", *AMBIGUITY_KINDS[1:]], 0)
    totals = dict(hits)
    for batch in torch.utils.data.DataLoader(items, batch_size=2):
        with torch.no_grad():
            pred = model(batch["image"]).argmax(1)
        labels = batch["labels"]
        conf += confusion_matrix(pred.numpy(), labels.numpy(), k)
        right, valid = pred == labels, labels != IGNORE_INDEX
        masks = {key: batch[key] for key in ("ambiguous", "cue_free")}
        masks.update({kind: batch["ambiguity"] == c for c, kind in enumerate(AMBIGUITY_KINDS) if c})
        for key, mask in masks.items():
            hits[key] += int(right[mask & valid].sum())
            totals[key] += int((mask & valid).sum())
    return conf, {key: hits[key] / totals[key] if totals[key] else None for key in hits}


def test_class_ids_equal_argmax_including_ties() -> None:
    """max(1).indices == argmax(1): random logits, integer logits full of ties, channels_last, a NaN row."""
    import torch

    from ocrviz.evaluate import class_ids

    g = torch.Generator().manual_seed(0)
    cases = [torch.randn(2, 9, 16, 24, generator=g),
             torch.randint(0, 3, (2, 9, 16, 24), generator=g).float(),           # many exact ties
             torch.randn(2, 9, 16, 24, generator=g).contiguous(memory_format=torch.channels_last)]
    nan = torch.randn(1, 5, 4, 4, generator=g)
    nan[0, 2, 1, 1] = float("nan")
    cases.append(nan)
    for logits in cases:
        assert torch.equal(class_ids(logits), logits.argmax(1))


def test_evaluate_is_unchanged_by_the_speed_fixes() -> None:
    """The shipped OCR model on 3 ToyCity scenes: confusion and accuracies equal the pre-fix computation;
    a second pass (scenes replayed from the cache, another batch size) gives the same numbers."""
    import ocrviz
    from ocrviz.data.dataset import ToyCityDataset, val_split
    from ocrviz.evaluate import evaluate, forget_scenes

    model = ocrviz.load_model("toycity-ocr")
    ds = ToyCityDataset(val_split(3), height=64, width=128)
    conf, acc = _reference_evaluate(model, [ds[i] for i in range(3)], 9)
    first = evaluate(model, ds, batch_size=2)
    again = evaluate(model, ds, batch_size=3)
    streamed = evaluate(model, ds, batch_size=2, cache_scenes=False)
    for rep in (first, again, streamed):
        assert rep["confusion"] == conf.tolist()
        assert rep["miou"] == metrics_from_confusion(conf)["miou"]
        assert rep["ambiguous_acc"] == acc["ambiguous"] and rep["cue_free_acc"] == acc["cue_free"]
        assert rep["ambiguous_acc_by_kind"] == {k: acc[k] for k in ("window", "surface", "panel")}
    forget_scenes(ds)


def test_rendered_batches_equal_the_dataloaders() -> None:
    """evaluate renders a ToyCity split itself (ToyCityDataset.render): every array it scores
    equals the DataLoader's batch of dataset[i], and its uint8 images normalise to the same input."""
    import torch

    from ocrviz.data.dataset import ToyCityDataset, normalize, val_split
    from ocrviz.evaluate import _KEEP, _rendered_batches

    ds = ToyCityDataset(val_split(5), height=64, width=128)
    ref = list(torch.utils.data.DataLoader(ds, batch_size=2, shuffle=False))
    got = list(_rendered_batches(ds, 2))
    assert [len(b["labels"]) for b, _ in got] == [2, 2, 1]
    for (batch, u8), want in zip(got, ref):
        assert sorted(batch) == sorted(_KEEP)
        for key in _KEEP:
            assert batch[key].dtype == want[key].dtype and torch.equal(batch[key], want[key]), key
        assert u8.dtype == torch.uint8 and torch.equal(normalize(u8), want["image"])
    assert list(_rendered_batches(ToyCityDataset([], height=32, width=64), 2)) == []


def test_scenes_are_rendered_once(monkeypatch) -> None:
    """A ToyCity split is rendered on the first pass only; augmented or cache_scenes=False ones every pass."""
    import ocrviz
    from ocrviz.data import dataset as dataset_mod
    from ocrviz.evaluate import evaluate, forget_scenes

    calls = []                                                  # scenes rendered (dataset[i] renders too)
    real = dataset_mod.ToyCityDataset.render
    monkeypatch.setattr(dataset_mod.ToyCityDataset, "render", lambda self, i: calls.append(i) or real(self, i))
    model = ocrviz.create_model("fcn", num_classes=9, widths=(8, 8, 16, 16), channels=8).eval()
    ds = dataset_mod.ToyCityDataset(dataset_mod.val_split(2), height=32, width=64)
    evaluate(model, ds)
    evaluate(model, ds, batch_size=1)
    assert len(calls) == 2
    evaluate(model, ds, cache_scenes=False)
    assert len(calls) == 4
    forget_scenes(ds)
    evaluate(model, ds)
    assert len(calls) == 6
    aug = dataset_mod.ToyCityDataset(dataset_mod.val_split(2), height=32, width=64, augment=True)
    evaluate(model, aug)
    evaluate(model, aug)
    assert len(calls) == 10
    forget_scenes()


def test_numpy_blas_threads_are_limited_and_restored() -> None:
    from ocrviz.evaluate import _openblas, numpy_blas_threads

    blas = _openblas()
    if blas is None:
        pytest.skip("numpy does not use OpenBLAS here: numpy_blas_threads is a no-op")
    get, put = blas
    before = get()
    with numpy_blas_threads(1):
        assert get() == 1
        np.ones((64, 64)) @ np.ones((64, 64))
    assert get() == before


def test_evaluate_device_is_checked() -> None:
    import torch

    from ocrviz.evaluate import resolve_device

    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="allowed: 'cpu', 'cuda'"):
        resolve_device("tpu")


def test_bench_evaluate_quick_runs_and_checks_equal_results() -> None:
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(repo / "benchmarks" / "bench_evaluate.py"), "--quick", "--threads", "1"],
                          cwd=repo, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| evaluate") or line.startswith("| forward")]
    assert len(rows) == 5 and "(checked equal)" in proc.stdout


def test_training_validation_renders_its_scenes_once(monkeypatch) -> None:
    """ocrviz.train validates every val_every steps on the same small split: rendered on the first pass only."""
    from ocrviz.data import dataset as dataset_mod
    from ocrviz.train import TrainConfig, train

    rendered = []
    real = dataset_mod.ToyCityDataset.render                    # what dataset[i] and evaluate render with

    def counting(self, i):
        if not self.augment:                                    # validation scenes (training ones are augmented)
            rendered.append(int(self.seeds[i]))
        return real(self, i)
    monkeypatch.setattr(dataset_mod.ToyCityDataset, "render", counting)
    cfg = TrainConfig(arch="fcn", steps=4, batch_size=1, height=32, width=64, val_images=2, val_every=1, threads=1,
                      model_kwargs={"widths": [8, 8, 16, 16], "channels": 8})
    result = train(cfg, progress=False, command="test")
    assert [h["step"] for h in result.card["history"]] == [1, 2, 3]
    assert len(rendered) == 2 + 2                               # the 3 validations once, the final report once
