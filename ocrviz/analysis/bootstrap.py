"""Confidence intervals over images: the percentile bootstrap.

A data set's figures are sums over images (confusion matrices, hit counts),
so resampling IMAGES with replacement and recomputing each figure from the
resampled sums says how much it depends on which images were drawn.  One
``Resamples`` object (B draws of N images, from a seed) is shared by every
figure and every model of a report, so that a DIFFERENCE between two models
is bootstrapped on the same draws (paired).

Example::

    rs = Resamples(n_images=50, n_boot=1000, seed=0)
    lo, hi = rs.interval(rs.miou(per_image_conf))              # per_image_conf: N x K x K
    lo, hi = rs.interval(rs.ratio(hits, totals))               # N, N
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LEVEL = 0.95


def miou_of(conf: np.ndarray) -> np.ndarray:
    """... x K x K confusion matrices -> ... mIoUs (mean IoU over the classes in target or prediction, as
    ``ocrviz.evaluate.metrics_from_confusion``; NaN where no class occurs)."""
    conf = np.asarray(conf, np.float64)
    tp = np.diagonal(conf, axis1=-2, axis2=-1)                               # ... x K
    union = conf.sum(-1) + conf.sum(-2) - tp                                 # ... x K
    present = union > 0
    iou = np.where(present, tp / np.where(present, union, 1.0), 0.0)
    n = present.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, iou.sum(-1) / np.maximum(n, 1), np.nan)


@dataclass(frozen=True)
class Resamples:
    """``weights[b, i]``: how often image i occurs in bootstrap draw b (each row sums to N)."""

    n_images: int
    n_boot: int = 1000
    seed: int = 0
    level: float = LEVEL
    weights: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.n_images < 1:
            raise ValueError(f"n_images={self.n_images}: a bootstrap needs at least one image")
        if self.n_boot < 10:
            raise ValueError(f"n_boot={self.n_boot}: give at least 10 resamples (1000 is usual)")
        if not 0 < self.level < 1:
            raise ValueError(f"level={self.level}: give a coverage in (0, 1), e.g. 0.95")
        rng = np.random.default_rng(self.seed)
        draws = rng.integers(0, self.n_images, size=(self.n_boot, self.n_images))   # B x N image indices
        w = np.zeros((self.n_boot, self.n_images))
        np.add.at(w, (np.arange(self.n_boot)[:, None], draws), 1.0)
        object.__setattr__(self, "weights", w)

    def describe(self) -> str:
        return (f"{self.level:.0%} percentile bootstrap over the {self.n_images} images "
                f"({self.n_boot} resamples, seed {self.seed})")

    def _check(self, per_image: np.ndarray) -> np.ndarray:
        a = np.asarray(per_image, np.float64)
        if a.shape[0] != self.n_images:
            raise ValueError(f"per-image values for {a.shape[0]} images, resamples of {self.n_images}; "
                             "give one entry per image, in the order the resamples were drawn for")
        return a

    def sums(self, per_image: np.ndarray) -> np.ndarray:
        """N x ... per-image sums -> B x ... resampled totals."""
        a = self._check(per_image)
        return np.tensordot(self.weights, a, axes=(1, 0))

    def miou(self, per_image_conf: np.ndarray) -> np.ndarray:
        """N x K x K -> B resampled mIoUs."""
        return miou_of(self.sums(per_image_conf))

    def ratio(self, num: np.ndarray, den: np.ndarray) -> np.ndarray:
        """Per-image numerators and denominators (N each) -> B resampled ratios sum(num) / sum(den)."""
        n, d = self.sums(num), self.sums(den)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(d > 0, n / np.where(d > 0, d, 1.0), np.nan)

    def interval(self, samples: np.ndarray) -> tuple[float, float] | None:
        """B resampled values -> (lo, hi) at ``level`` (None when no draw gave a number)."""
        s = np.asarray(samples, np.float64)
        s = s[np.isfinite(s)]
        if not s.size:
            return None
        a = (1 - self.level) / 2
        lo, hi = np.quantile(s, [a, 1 - a])
        return float(lo), float(hi)
