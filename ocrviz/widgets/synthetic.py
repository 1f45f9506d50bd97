"""Synthetic ExplorerData: a toy scene with plausible OCR tensors, no model.

For tests, benchmarks and trying the widget before a model is trained.  The
numbers obey every invariant of the real thing (rows of the sim map and each
region map sum to 1, class maps in range), so they exercise the same paths.
"""
from __future__ import annotations

import numpy as np

from .explorer_data import ExplorerData, default_palette


def _softmax(a: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _randint(rng: np.random.Generator, lo: int, hi: int) -> int:
    """rng.integers that tolerates the empty ranges of tiny grids."""
    return int(rng.integers(lo, max(lo + 1, hi)))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], h: int, w: int, cells: int = 4) -> np.ndarray:
    """Low-frequency noise: a coarse random grid, bilinearly upsampled to h x w."""
    gh, gw = max(2, h // cells + 1), max(2, w // cells + 1)
    coarse = rng.normal(size=shape + (gh, gw))
    fy, fx = np.linspace(0, gh - 1, h), np.linspace(0, gw - 1, w)
    y0, x0 = np.minimum(fy.astype(int), gh - 2), np.minimum(fx.astype(int), gw - 2)
    ty, tx = (fy - y0)[:, None], (fx - x0)[None, :]
    c = lambda dy, dx: coarse[..., (y0 + dy)[:, None], (x0 + dx)[None, :]]  # noqa: E731
    return (c(0, 0) * (1 - ty) * (1 - tx) + c(0, 1) * (1 - ty) * tx
            + c(1, 0) * ty * (1 - tx) + c(1, 1) * ty * tx)


def synthetic_data(h: int = 16, w: int = 32, k: int = 5, output_stride: int = 8, seed: int = 0,
                   aspp: bool = True, with_gt: bool = True, pred_at_image: bool = True) -> ExplorerData:
    """A toy street scene: sky, buildings, road, and k - 3 kinds of objects.

    Image H x W = (h * s) x (w * s).  Example:

        >>> d = synthetic_data(h=8, w=16, k=4)
        >>> d.image.shape, d.feat_hw, d.num_classes
        ((64, 128, 3), (8, 16), 4)
    """
    if k < 2:
        raise ValueError(f"k={k}; synthetic_data needs at least 2 classes")
    rng = np.random.default_rng(seed)
    s = output_stride
    H, W = h * s, w * s
    yy, xx = np.mgrid[0:H, 0:W]
    gt = np.zeros((H, W), np.int64)                     # class 0 = road (bottom)
    horizon = int(H * 0.55)
    gt[:horizon] = 1 % k                                # sky / building band
    if k > 2:
        for _ in range(max(2, W // 96)):                # buildings
            x0 = int(_randint(rng, 0, W - W // 6))
            gt[int(H * 0.15):horizon, x0:x0 + int(_randint(rng, W // 12, W // 5))] = 2
    names = ["road", "sky", "building", "car", "person", "tree", "sign", "pole", "rider", "truck"]
    for _ in range(3 * max(1, k - 3)):                 # objects: ellipses on and near the road
        c = _randint(rng, 3, k) if k > 3 else _randint(rng, 0, k)
        cy, cx = rng.uniform(horizon * 0.8, H * 0.95), rng.uniform(0, W)
        ry, rx = rng.uniform(H * 0.05, H * 0.15), rng.uniform(W * 0.03, W * 0.1)
        y0, y1 = max(0, int(cy - ry)), min(H, int(cy + ry) + 1)
        x0, x1 = max(0, int(cx - rx)), min(W, int(cx + rx) + 1)
        box = ((yy[y0:y1, x0:x1] - cy) / ry) ** 2 + ((xx[y0:y1, x0:x1] - cx) / rx) ** 2 <= 1
        gt[y0:y1, x0:x1][box] = c
    palette = default_palette(k)
    shade = 0.75 + 0.25 * _smooth_noise(rng, (), H, W, cells=16).clip(-1, 1)
    image = palette[gt].astype(np.float64) * shade[..., None] + rng.normal(0, 6, (H, W, 3))
    image = np.clip(image, 0, 255).astype(np.uint8)
    if with_gt:
        ignore = rng.random((H, W)) < 0.002
        gt_shown = np.where(ignore, 255, gt)
    # cell-level class fractions: K x h x w
    cell = (yy // s) * w + xx // s                                                   # H x W cell index
    counts = np.bincount((cell * k + gt).ravel(), minlength=h * w * k)              # HW*K
    onehot = (counts.reshape(h, w, k) / (s * s)).transpose(2, 0, 1)                 # K x h x w
    region_logits = 6.0 * onehot + 0.8 * _smooth_noise(rng, (k,), h, w)            # K x h x w
    region_weights = _softmax(region_logits.reshape(k, h * w), axis=1).reshape(k, h, w)
    cell_cls = onehot.argmax(0)                                                      # h x w
    sim_logits = 2.5 * np.eye(k)[cell_cls] + rng.normal(0, 0.7, (h, w, k))          # h x w x K
    sim_map = _softmax(sim_logits.reshape(h * w, k), axis=1)                         # HW x K
    pred = gt.copy()
    for _ in range(3):                                   # a few wrong blobs
        y0, x0 = int(_randint(rng, 0, H - H // 8)), int(_randint(rng, 0, W - W // 8))
        pred[y0:y0 + H // 10, x0:x0 + W // 12] = _randint(rng, 0, k)
    if not pred_at_image:
        pred = pred[s // 2::s, s // 2::s]
    kw = {}
    if aspp:
        shares = _softmax(0.8 * _smooth_noise(rng, (5,), h, w).reshape(5, h * w).T, axis=1)  # HW x 5
        aspp_pred = gt.copy()
        for _ in range(5):
            y0, x0 = int(_randint(rng, 0, H - H // 6)), int(_randint(rng, 0, W - W // 6))
            aspp_pred[y0:y0 + H // 7, x0:x0 + W // 9] = _randint(rng, 0, k)
        kw = dict(aspp_rates=(2, 4, 6) if max(h, w) < 64 else (12, 24, 36), aspp_shares=shares,
                  aspp_pred=aspp_pred)
    return ExplorerData(image=image, feat_hw=(h, w), output_stride=s,
                        class_names=tuple((names + [f"class {i}" for i in range(len(names), k)])[:k]),
                        palette=palette, pred=pred, sim_map=sim_map, region_weights=region_weights,
                        gt=gt_shown if with_gt else None, **kw)


def synthetic_erf(data: ExplorerData, y: int, x: int) -> np.ndarray:
    """A plausible ERF (h x w): a Gaussian around the cell plus the ASPP taps' cells."""
    h, w = data.feat_hw
    yy, xx = np.mgrid[0:h, 0:w]
    erf = np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * max(1.0, min(h, w) / 8) ** 2))
    for r in data.aspp_rates or ():
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                ty, tx = y + dy * r, x + dx * r
                if 0 <= ty < h and 0 <= tx < w:
                    erf[ty, tx] += 0.3
    return erf
