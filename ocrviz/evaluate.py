"""Segmentation metrics: confusion matrix, mIoU, per-class IoU, pixel accuracy,
and accuracy on ToyCity's designed-ambiguous pixels: all of them, per kind
(window / surface / panel), and the cue-free ones (no other appearance within
the backbone's receptive field; :mod:`ocrviz.data.ambiguity`).

Example::

    from ocrviz.evaluate import evaluate
    report = evaluate(model, ToyCityDataset(val_split(50)))
    report["miou"], report["ambiguous_acc"], report["cue_free_acc"]
"""
from __future__ import annotations

import time
from typing import Iterable

import numpy as np
import torch

from ocrviz.data.toycity import AMBIGUITY_KINDS

IGNORE_INDEX = 255


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """K x K counts, rows = true class, columns = predicted class."""
    pred, target = np.asarray(pred).ravel(), np.asarray(target).ravel()
    if pred.shape != target.shape:
        raise ValueError(f"pred has {pred.size} pixels, target {target.size}; they must match")
    keep = target != ignore_index
    bad = (target[keep] < 0) | (target[keep] >= num_classes)
    if bad.any():
        raise ValueError(f"target holds class ids {np.unique(target[keep][bad])[:5].tolist()} outside "
                         f"0..{num_classes - 1} (and {ignore_index} = ignore)")
    idx = target[keep].astype(np.int64) * num_classes + pred[keep].astype(np.int64)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def metrics_from_confusion(conf: np.ndarray, class_names: list[str] | None = None) -> dict:
    """mIoU over the classes that occur (in target or prediction), per-class IoU, pixel accuracy."""
    conf = conf.astype(np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    present = union > 0
    iou = np.where(present, tp / np.maximum(union, 1), np.nan)
    names = class_names or [str(k) for k in range(len(tp))]
    return {
        "miou": float(np.nanmean(iou)) if present.any() else float("nan"),
        "pixel_acc": float(tp.sum() / max(conf.sum(), 1)),
        "per_class_iou": {n: (None if np.isnan(v) else round(float(v), 4)) for n, v in zip(names, iou)},
    }


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, aux: bool = False) -> torch.Tensor:
    """B x 3 x H x W normalised float -> B x H x W int64 class ids.

    ``aux=True``: the auxiliary head's classes instead (for OCRNet, its soft
    object regions); a model without one raises ``ValueError``."""
    if not aux:
        return model(images).argmax(1)
    out = model(images, return_aux=True)[1]
    if out is None:
        raise ValueError(f"{type(model).__name__} ({getattr(model, 'arch', '?')}) has no auxiliary head; "
                         "aux=True works for OCRNet (its soft object regions)")
    return out.argmax(1)


@torch.no_grad()
def evaluate(model: torch.nn.Module, dataset: Iterable[dict], num_classes: int | None = None,
             class_names: list[str] | None = None, batch_size: int = 4, aux: bool = False) -> dict:
    """Evaluate a model on a dataset of dicts with ``image``, ``labels`` and
    optionally ``ambiguous`` (as yielded by ``ToyCityDataset``).

    Returns mIoU, per-class IoU, pixel accuracy, the confusion matrix (list
    of lists) and the CPU time per image; with ``ambiguous`` in the items also
    ``ambiguous_acc``, with ``ambiguity`` codes ``ambiguous_acc_by_kind``, and
    with ``cue_free`` masks ``cue_free_acc`` (each None where no pixel counts,
    next to its ``*_pixels`` count).  ``aux=True`` scores the auxiliary head
    (OCRNet's soft object regions) instead of the final prediction.
    """
    was_training = model.training
    model.eval()
    k = num_classes or model.num_classes
    names = class_names or getattr(model, "class_names", None)
    conf = np.zeros((k, k), dtype=np.int64)
    hits = dict.fromkeys(["ambiguous", "cue_free", *AMBIGUITY_KINDS[1:]], 0)
    totals = dict(hits)
    n = 0
    seconds = 0.0
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for batch in loader:
        t0 = time.perf_counter()
        pred = predict(model, batch["image"], aux)
        seconds += time.perf_counter() - t0
        labels = batch["labels"]
        conf += confusion_matrix(pred.numpy(), labels.numpy(), k)
        right, valid = pred == labels, labels != IGNORE_INDEX     # B x H x W each
        masks = {key: batch[key] for key in ("ambiguous", "cue_free") if key in batch}
        if "ambiguity" in batch:
            masks.update({kind: batch["ambiguity"] == code for code, kind in enumerate(AMBIGUITY_KINDS) if code})
        for key, mask in masks.items():
            mask = mask & valid
            hits[key] += int(right[mask].sum())
            totals[key] += int(mask.sum())
        n += len(labels)
    model.train(was_training)
    out = metrics_from_confusion(conf, names)
    acc = {key: (hits[key] / totals[key]) if totals[key] else None for key in hits}
    out.update(
        ambiguous_acc=acc["ambiguous"],
        ambiguous_pixels=totals["ambiguous"],
        ambiguous_acc_by_kind={kind: acc[kind] for kind in AMBIGUITY_KINDS[1:]},
        cue_free_acc=acc["cue_free"],
        cue_free_pixels=totals["cue_free"],
        n_images=n,
        seconds_per_image=seconds / max(n, 1),
        confusion=conf.tolist(),
    )
    return out


def main(argv: list[str] | None = None) -> None:
    """``python -m ocrviz.evaluate toycity-ocr [toycity-aspp ...] [--images 100]``:
    re-evaluate shipped models on the fixed validation split and print a table."""
    import argparse

    from ocrviz.data.dataset import ToyCityDataset, val_split
    from ocrviz.zoo import SHIPPED, load_model

    parser = argparse.ArgumentParser(prog="python -m ocrviz.evaluate", description=main.__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", metavar="NAME", help=f"shipped model names: {', '.join(SHIPPED)}")
    parser.add_argument("--images", type=int, default=100, help="validation scenes, 1..200 (default 100)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--soft-regions", action="store_true",
                        help="also score OCRNet's soft object regions (its auxiliary head)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    models = {name: load_model(name) for name in args.models}     # unknown names fail here, before any work
    data = ToyCityDataset(val_split(args.images))
    print(f"| model | mIoU | pixel acc | ambiguous acc | cue-free acc | {' | '.join(AMBIGUITY_KINDS[1:])} |")
    print("|---|---:|---:|---:|---:|" + "---:|" * (len(AMBIGUITY_KINDS) - 1))
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731  (None: no such pixel in the split)
    runs = [(name, model, False) for name, model in models.items()]
    if args.soft_regions:
        runs += [(f"{name} (soft regions)", m, True) for name, m in models.items() if getattr(m, "arch", "") == "ocrnet"]
    for name, model, aux in runs:
        r = evaluate(model, data, aux=aux)
        kinds = " | ".join(fmt(r["ambiguous_acc_by_kind"][k]) for k in AMBIGUITY_KINDS[1:])
        print(f"| {name} | {r['miou']:.3f} | {r['pixel_acc']:.3f} | {fmt(r['ambiguous_acc'])} | "
              f"{fmt(r['cue_free_acc'])} | {kinds} |", flush=True)


if __name__ == "__main__":
    main()
