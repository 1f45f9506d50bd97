"""The numbers behind ``ocrviz report``: several models on the same images.

``run_report`` evaluates each model on the data set (``ocrviz.evaluate`` with
one confusion matrix per image), runs the attention analyses on the models
that have an OCR head (``attention_report``, ``context_flow``), and puts a
bootstrap confidence interval over IMAGES (``analysis.bootstrap``, one set of
draws shared by every model, so the deltas between models are paired) beside
each figure.  The result is a JSON-ready dict; its contract (tested):

    {"data": str, "n_images": N, "bootstrap": {"n_boot", "seed", "level", "text"},
     "models": [{"name", "arch", "miou", "miou_ci": [lo, hi], "pixel_acc", "pixel_acc_ci",
                 "per_image": [{"index", "image", "miou", "pixel_acc", ...}] (N entries),
                 "worst": [image indices, lowest mIoU first], "metrics": evaluate's dict,
                 "analyses": {"attention_report": {...}, "context_flow": {...}}, "skipped": str | None}],
     "deltas": [{"name", "vs", "miou", "miou_ci", "pixel_acc", "pixel_acc_ci"}]}

A model without an OCR head gets one ``skipped`` line instead of the attention report, and
its context flow when its head has one exact context map (``context_flow``; self-attention, DANet).
"""
from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ocrviz.analysis.bootstrap import Resamples, miou_of
from ocrviz.evaluate import metrics_from_confusion

Scenes = Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]
MIOU_FIELDS = ("miou", "miou_uniform_sim", "miou_onehot_sim", "miou_shuffled_sim")     # per_image_conf[:, j]
RATIO_FIELDS = {"effective_regions": ("eff", "cells"), "kl_from_uniform": ("kl", "cells"),
                "top_is_pred": ("pred", "cells"), "top_is_soft": ("soft", "cells"), "top_is_true": ("true", "true_n")}


class Sized:
    """An iterator with a length, so that a progress bar knows its total."""

    def __init__(self, it: Iterator[Any], n: int) -> None:
        self.it, self.n = it, n

    def __iter__(self) -> Iterator[Any]:
        return iter(self.it)

    def __len__(self) -> int:
        return self.n


def split(scenes: Scenes, n: int) -> tuple[Sized, Sized]:
    """Images and labels as two iterators over ONE pass of ``scenes`` (rendered / read once, in step)."""
    a, b = itertools.tee(scenes())
    return Sized((i for i, _ in a), n), Sized((lab for _, lab in b), n)


def no_ocr_reason(model: torch.nn.Module) -> str | None:
    """None when the attention analyses can read this model's OCR head, else why not (one short clause)."""
    from ocrviz.analysis.counterfactual import ocr_parts

    try:
        ocr_parts(model)
    except ValueError:
        ocr_like = [type(m).__name__ for m in model.modules()
                    if any(t in type(m).__name__ for t in ("OCR", "SpatialGather", "ObjectAttention"))]
        if ocr_like:
            return (f"its OCR head ({ocr_like[0]}) is a layout the counterfactual re-run does not read (it reads "
                    "ocrviz's, official HRNet-OCR's and openseg's)")
        arch = getattr(model, "arch", None) or type(getattr(model, "head", model)).__name__
        return f"its head is {arch}, not OCR"
    return None


def even_spread_flow(scenes: Scenes, k: int) -> np.ndarray:
    """K x K: the share of class c among a class-t pixel's image, averaged over the class-t pixels.

    What a context-mass row of ``context_flow`` would be if every pixel took its context evenly from the
    whole image (labelled pixels only): the chance level of each flow-matrix entry."""
    num, den = np.zeros((k, k)), np.zeros(k)
    for _, lab in scenes():
        lab = np.asarray(lab).ravel()
        counts = np.bincount(lab[(lab >= 0) & (lab < k)], minlength=k).astype(np.float64)    # K
        if counts.sum():
            num += np.outer(counts, counts / counts.sum())
            den += counts
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den[:, None] > 0, num / np.maximum(den[:, None], 1), np.nan)


def _ci(pair: tuple[float, float] | None) -> list[float] | None:
    return None if pair is None else [pair[0], pair[1]]


def _clean(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, np.generic):
        return _clean(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _attention(model: torch.nn.Module, scenes: Scenes, n: int, rs: Resamples, aspp: tuple[str, torch.nn.Module] | None,
               k: int, progress: bool, warn: Callable[[str], None]) -> tuple[dict, list[dict]]:
    """attention_report + context_flow of one OCR model -> (analyses entry, per-image extras)."""
    from ocrviz.analysis import attention_report, context_flow
    from ocrviz.analysis.report import DEFINITIONS, FIELD_LABELS, PER_IMAGE_SUMS
    from ocrviz.analysis.verdicts import attention_verdicts

    rep = attention_report(model, *split(scenes, n), progress=progress)
    col = {name: j for j, name in enumerate(PER_IMAGE_SUMS)}
    sums, conf = rep.per_image_sums, rep.per_image_conf                       # N x 7, N x 4 x K x K
    ci = {f: _ci(rs.interval(rs.ratio(sums[:, col[a]], sums[:, col[b]]))) for f, (a, b) in RATIO_FIELDS.items()}
    boot = {f: rs.miou(conf[:, j]) for j, f in enumerate(MIOU_FIELDS)}
    ci.update({f: _ci(rs.interval(v)) for f, v in boot.items()})
    drops = {f"{e}_drop": _ci(rs.interval(boot["miou"] - boot[f"miou_{e}_sim"])) for e in ("uniform", "onehot", "shuffled")}
    v = attention_verdicts(rep)
    entry: dict[str, Any] = {"attention_report": {
        "dict": rep.to_dict(), "markdown": rep.to_markdown(), "chance": rep.chance(), "ci": ci, "drop_ci": drops,
        "verdicts": list(v.sentences), "labels": FIELD_LABELS, "definitions": DEFINITIONS}}
    per_image = []
    for i in range(sums.shape[0]):
        s = sums[i]
        per_image.append({"effective_regions": s[col["eff"]] / s[col["cells"]],
                          "top_is_true": s[col["true"]] / s[col["true_n"]] if s[col["true_n"]] else None,
                          "miou_uniform_sim": float(miou_of(conf[i, 1]))})
    flow = None
    for partner in ([aspp[1], None] if aspp is not None else [None]):
        try:
            flow = context_flow(model, *split(scenes, n), aspp_model=partner, progress=progress)
            break
        except ValueError as e:
            if partner is None:
                warn(f"context flow skipped ({e})")
            else:
                warn(f"context flow drawn without the ASPP model ({e})")
    if flow is not None:
        entry["context_flow"] = {"dict": flow.to_dict(), "even_spread": even_spread_flow(scenes, k),
                                 "aspp_name": aspp[0] if aspp is not None and flow.aspp_mass is not None else None}
    return entry, per_image


def run_report(models: Sequence[tuple[str, torch.nn.Module]], dataset: Any, scenes: Scenes,
               image_names: Sequence[str], *, data: str = "", class_names: Sequence[str] | None = None,
               device: Any = None, batch_size: int = 4, analyses: bool = True, progress: bool = True,
               n_boot: int = 1000, seed: int = 0, n_worst: int = 5,
               warn: Callable[[str], None] = lambda line: None) -> dict:
    """Every model on the same images -> the JSON-ready report (see the module docstring).

    Args:
        models: (name, model) pairs; the first is the reference of the deltas.
        dataset: evaluate's items (``image`` normalised, ``labels``), in the order of ``image_names``.
        scenes: a factory of (H x W x 3 uint8 image, H x W labels) iterators over the same images.
        n_boot, seed: the bootstrap's resamples (one set for every model and figure).
        n_worst: the images with the lowest mIoU listed per model (at most half of the images).
        warn: called with one line when an optional analysis cannot run.
    """
    from ocrviz.evaluate import evaluate

    if not models:
        raise ValueError("run_report got no models; give at least one (name, model) pair")
    n = len(image_names)
    rs = Resamples(n_images=n, n_boot=n_boot, seed=seed)
    aspp = next(((name, m) for name, m in models if getattr(m, "arch", None) == "aspp"), None)
    out: dict[str, Any] = {"data": data, "n_images": n, "device": str(device or "cpu"),
                           "bootstrap": {"n_boot": n_boot, "seed": seed, "level": rs.level, "text": rs.describe()},
                           "models": [], "deltas": []}
    boots: list[tuple[np.ndarray, np.ndarray]] = []
    for name, model in models:
        if progress:
            print(f"{name}:", file=sys.stderr)
        k = int(getattr(model, "num_classes", 0) or len(class_names or []))
        names = list(class_names or getattr(model, "class_names", None) or [str(i) for i in range(k)])
        metrics = evaluate(model, dataset, k, names, batch_size=batch_size, device=device, progress=progress,
                           cache_scenes=False, per_image=True)
        conf = metrics.pop("per_image_confusion")                                     # N x K x K
        if conf.shape[0] != n:
            raise ValueError(f"{name}: evaluate saw {conf.shape[0]} images, the report names {n}")
        tp = np.trace(conf, axis1=1, axis2=2).astype(np.float64)                     # N
        total = conf.sum((1, 2)).astype(np.float64)                                  # N
        b_miou, b_acc = rs.miou(conf), rs.ratio(tp, total)
        boots.append((b_miou, b_acc))
        per_image = [{"index": i, "image": image_names[i], "miou": float(miou_of(conf[i])),
                      "pixel_acc": float(tp[i] / total[i]) if total[i] else None,
                      "per_class_iou": metrics_from_confusion(conf[i], names)["per_class_iou"]} for i in range(n)]
        entry: dict[str, Any] = {
            "name": name, "arch": getattr(model, "arch", None) or type(model).__name__,
            "miou": metrics["miou"], "miou_ci": _ci(rs.interval(b_miou)),
            "pixel_acc": metrics["pixel_acc"], "pixel_acc_ci": _ci(rs.interval(b_acc)),
            "metrics": metrics, "per_image": per_image, "analyses": {}, "skipped": None}
        reason = no_ocr_reason(model)
        if not analyses:
            entry["skipped"] = "attention report and context flow skipped (--no-analyses)"
        elif reason is not None:
            try:                                  # any head whose map is exact still gets its context flow
                from ocrviz.analysis import context_flow
                flow = context_flow(model, *split(scenes, n), progress=progress)
                entry["analyses"]["context_flow"] = {"dict": flow.to_dict(), "even_spread": even_spread_flow(scenes, k),
                                                     "aspp_name": None}
                entry["skipped"] = (f"attention report skipped: {reason}; it re-runs OCR's head on edited similarity "
                                    f"maps; context flow drawn from its exact map ({flow.head})")
            except ValueError as e:               # the reason goes to warn; the page line stays short
                warn(f"{name}: context flow skipped ({e})")
                entry["skipped"] = (f"attention report and context flow skipped: {reason}; the first re-runs OCR's "
                                    "head on edited similarity maps, the second needs one exact context map")
        else:
            entry["analyses"], extra = _attention(model, scenes, n, rs, aspp, k, progress,
                                                  lambda line, name=name: warn(f"{name}: {line}"))
            for row, more in zip(per_image, extra):
                row.update(more)
        order = sorted(range(n), key=lambda i: (np.inf if np.isnan(per_image[i]["miou"]) else per_image[i]["miou"], i))
        entry["worst"] = order[:min(n_worst, max(1, n // 2))]          # "worst" of a few images: at most half
        out["models"].append(entry)
    ref = out["models"][0]
    for (b_miou, b_acc), entry in zip(boots[1:], out["models"][1:]):
        out["deltas"].append({"name": entry["name"], "vs": ref["name"],
                              "miou": entry["miou"] - ref["miou"],
                              "miou_ci": _ci(rs.interval(b_miou - boots[0][0])),
                              "pixel_acc": entry["pixel_acc"] - ref["pixel_acc"],
                              "pixel_acc_ci": _ci(rs.interval(b_acc - boots[0][1]))})
    return _clean(out)
