"""Which part of OCR is to blame for each error: ``error_blame``.

Three counterfactual predictions of the whole image, each the model's own
head re-run by :func:`rerun_head` and upsampled to the image as the model's
forward does (so everything is decided per image PIXEL):

* REGION (R): the soft regions replaced by the ground truth's.  Region k's
  spatial weights become the fraction of each cell's pixels labelled k,
  normalised to sum 1 over the image (ignored pixels count for no class); a
  class absent from the labels keeps the model's own weights.  Proxies, key,
  value and the sim map follow.
* RELATION (S): every cell's sim row replaced by a one-hot on the cell's true
  class (the label of its centre pixel, ``cells.labels_at_cells``); cells
  whose centre is ignored keep their row.  Values stay the model's.
* JOINT (R+S): both edits at once (the one-hot rows read the ground-truth
  regions' values).

A misclassified pixel (label != 255, prediction != label) is

* ``region``   : R repairs it (prediction == label) and S does not;
* ``relation`` : S repairs it and R does not;
* ``both``     : R alone repairs it AND S alone repairs it (either suffices);
* ``neither``  : neither R alone nor S alone repairs it: the error lies in
  the pixel features or the classifier, or needs both edits together;
  ``joint`` marks the ``neither`` pixels that R+S does repair.

Example::

    blame = error_blame(model, scene.image, scene.labels)
    blame.counts            # K x 4, rows true class, columns CATEGORIES
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .cells import class_fractions, labels_at_cells
from .counterfactual import ocr_parts, rerun_head
from .passes import check_labels, image_pass

CATEGORIES = ("region", "relation", "both", "neither")
NOT_AN_ERROR = -1


@dataclass(frozen=True)
class ErrorBlame:
    """Per-pixel blame of one image.

    ``category`` H x W int8: index into ``CATEGORIES`` for misclassified
    pixels, -1 for correct or ignored ones.  ``joint`` H x W bool: ``neither``
    pixels repaired by the two edits together.  ``counts`` K x 4 int64 (rows
    true class, columns ``CATEGORIES``), ``joint_counts`` K.  ``prediction``,
    ``pred_region``, ``pred_relation``, ``pred_joint``: H x W class ids of the
    model and of each counterfactual.
    """

    category: np.ndarray
    joint: np.ndarray
    counts: np.ndarray
    joint_counts: np.ndarray
    prediction: np.ndarray
    pred_region: np.ndarray
    pred_relation: np.ndarray
    pred_joint: np.ndarray
    class_names: tuple[str, ...]

    @property
    def n_errors(self) -> int:
        return int(self.counts.sum())

    def totals(self) -> dict[str, int]:
        """Misclassified pixels per category, over all classes."""
        return {c: int(v) for c, v in zip(CATEGORIES, self.counts.sum(0))}

    def to_dict(self) -> dict[str, Any]:
        """Counts only (JSON-friendly): totals, per class, and the joint repairs."""
        return {"totals": self.totals(), "joint": int(self.joint_counts.sum()), "n_errors": self.n_errors,
                "per_class": {n: dict(zip(CATEGORIES, map(int, row)), joint=int(j))
                              for n, row, j in zip(self.class_names, self.counts, self.joint_counts)}}


def ground_truth_region_weights(labels: np.ndarray, own: torch.Tensor) -> torch.Tensor:
    """H x W labels, the model's 1 x K x h x w weights -> 1 x K x h x w ground-truth weights (see module doc)."""
    k, h, w = own.shape[1:]
    frac = torch.from_numpy(class_fractions(labels, k, (h, w))).to(own)    # K x h x w
    mass = frac.sum((1, 2), keepdim=True)                                   # K x 1 x 1
    gt = torch.where(mass > 0, frac / mass.clamp_min(1e-12), own[0])       # K x h x w
    return gt[None]                                                         # 1 x K x h x w


def true_class_rows(labels: np.ndarray, sim: torch.Tensor, stride: int, feat_hw: tuple[int, int]) -> torch.Tensor:
    """1 x HW x K: one-hot rows on each cell's true class; ignored cells keep their row of ``sim``."""
    k = sim.shape[-1]
    cell = torch.from_numpy(labels_at_cells(labels, stride, feat_hw).ravel()).to(sim.device)  # HW
    known = cell != 255
    onehot = F.one_hot(torch.where(known, cell, 0), k).to(sim.dtype)       # HW x K
    return torch.where(known[:, None], onehot, sim[0])[None]                # 1 x HW x K


@torch.no_grad()
def error_blame(model: torch.nn.Module, image: np.ndarray, labels: np.ndarray) -> ErrorBlame:
    """Blame every misclassified pixel of one image on the regions, the relation, both or neither.

    Args:
        model: a supported OCR model (``counterfactual.SUPPORTED``), put in eval
            mode for the call.
        image: H x W x 3 uint8 (H, W multiples of the model's output stride).
        labels: H x W class map, 255 = ignore.

    The categories are defined exactly in the module docstring.
    """
    parts = ocr_parts(model)
    k = int(getattr(model, "num_classes", 0) or parts.cls.out_channels)
    was_training = model.training
    model.eval()
    try:
        p = image_pass(model, image)
        lab = check_labels(labels, p.image_hw)
        c = p.cache
        rw = ground_truth_region_weights(lab, c.region_weights)             # 1 x K x h x w
        rows = true_class_rows(lab, c.sim_map, p.stride, p.feat_hw)         # 1 x HW x K
        preds = {"region": rerun_head(model, c, region_weights=rw),
                 "relation": rerun_head(model, c, sim_map=rows),
                 "joint": rerun_head(model, c, region_weights=rw, sim_map=rows)}
        preds = {n: p.to_image(v)[0].cpu().numpy() for n, v in preds.items()}  # H x W each
    finally:
        model.train(was_training)
    pred = p.pred.numpy()
    wrong = (lab != 255) & (pred != lab)
    fix_r, fix_s, fix_j = (preds[n] == lab for n in ("region", "relation", "joint"))
    category = np.full(lab.shape, NOT_AN_ERROR, np.int8)
    category[wrong & fix_r & ~fix_s] = 0
    category[wrong & fix_s & ~fix_r] = 1
    category[wrong & fix_r & fix_s] = 2
    category[wrong & ~fix_r & ~fix_s] = 3
    joint = (category == 3) & fix_j
    counts = np.zeros((k, len(CATEGORIES)), np.int64)
    np.add.at(counts, (lab[wrong], category[wrong].astype(np.int64)), 1)
    joint_counts = np.bincount(lab[joint], minlength=k).astype(np.int64)
    names = tuple(getattr(model, "class_names", None) or [str(i) for i in range(k)])
    return ErrorBlame(category=category, joint=joint, counts=counts, joint_counts=joint_counts, prediction=pred,
                      pred_region=preds["region"], pred_relation=preds["relation"], pred_joint=preds["joint"],
                      class_names=names)
