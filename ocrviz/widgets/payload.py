"""All tensor-to-payload conversion for the explorer, in one place.

``ExplorerData`` holds what the explorer shows (numpy only, validated once);
``to_payload`` turns it into widget traits (small JSON values + binary
buffers); ``from_cache`` builds it from an ``ocrviz`` capture ``Cache``.

Precision policy (what the widget SHOWS must equal what was captured):
- ``sim_map`` rows (the numbers printed next to the bars) go as float32,
  bit-exact.
- region weights are only *drawn*: each map k is quantised to uint8 with its
  own scale ``max_k / 255`` (error <= max_k / 510, below one colour step).
- class maps go as uint8 (255 = ignore), the image as lossless PNG.
- ERF maps (drawn only) as uint8 + scale, after normalising to a
  distribution over feature cells (the same units as the context map).

Shapes: H x W image, h x w feature grid (HW = h * w cells), K classes.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ocrviz.analysis.aspp_taps import aspp_branch_shares

SUM_TOL = 1e-3      # rows / maps must sum to 1 within this
IGNORE = 255        # ground-truth label that means "not labelled"

# A readable default palette (first 19 = Cityscapes, then distinct hues).
_CITYSCAPES = [(128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
               (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
               (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
               (0, 80, 100), (0, 0, 230), (119, 11, 32)]


def default_palette(k: int) -> np.ndarray:
    """K x 3 uint8 colours: Cityscapes' 19, then golden-angle hues."""
    out = list(_CITYSCAPES[:k])
    n = len(out)
    while len(out) < k:
        hue = (n * 0.618033988749895) % 1.0
        r, g, b = (int(255 * (0.55 + 0.45 * np.cos(2 * np.pi * (hue + o)))) for o in (0.0, 1 / 3, 2 / 3))
        out.append((r, g, b))
        n += 1
    return np.asarray(out, dtype=np.uint8).reshape(k, 3)


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a).copy()
    a.setflags(write=False)
    return a


def _int_map(name: str, a: Any, shapes: Sequence[tuple[int, int]], k: int, allow_ignore: bool) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name} has dtype {a.dtype}; expected integer class indices "
                         f"(take argmax over the class axis first)")
    if a.shape not in shapes:
        raise ValueError(f"{name} has shape {a.shape}; expected one of {list(shapes)} "
                         f"(feature grid h x w or image H x W, no batch axis)")
    ok = (a >= 0) & (a < k)
    if allow_ignore:
        ok |= a == IGNORE
    if not ok.all():
        bad = np.unique(a[~ok])[:5].tolist()
        allowed = f"0..{k - 1}" + (f" or {IGNORE} (ignore)" if allow_ignore else "")
        raise ValueError(f"{name} holds values {bad}; allowed are {allowed}")
    return _readonly(a.astype(np.uint8))


def _distribution(name: str, a: Any, shape: tuple[int, ...], axis: tuple[int, ...], what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "fiu":
        raise ValueError(f"{name} has dtype {a.dtype}; expected floats")
    if a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}; expected {shape}")
    a = a.astype(np.float32)
    if not np.isfinite(a).all() or (a < 0).any():
        raise ValueError(f"{name} has negative or non-finite values; expected probabilities ({what})")
    sums = a.sum(axis=axis, dtype=np.float64)
    worst = float(np.abs(sums - 1.0).max()) if sums.size else 0.0
    if worst > SUM_TOL:
        raise ValueError(f"{name} is not normalised: {what} must sum to 1, worst sum is off by {worst:.3g} "
                         f"(pass probabilities after the softmax, not logits)")
    return _readonly(a)


@dataclass(frozen=True, eq=False)
class ExplorerData:
    """Everything the explorer shows for one image (numpy arrays, read-only).

    Fields (H x W image, h x w feature cells, HW = h*w, K classes):
        image:          H x W x 3 uint8
        feat_hw:        (h, w)
        output_stride:  s, with h == ceil(H / s) and w == ceil(W / s)
        class_names:    K names
        palette:        K x 3 uint8 (any K x 3 ints 0..255 is accepted)
        pred:           h x w or H x W int class map (OCR prediction)
        sim_map:        HW x K float, each row sums to 1 (pixel -> regions)
        region_weights: K x h x w float, each map sums to 1 (spatial softmax)
        gt:             optional h x w or H x W int, 255 = ignore
        aspp_rates:     optional dilation rates in feature cells, e.g. (12, 24, 36)
        aspp_shares:    optional HW x (len(rates) + 2) float, rows sum to 1
                        (1x1, dilated..., image pool)
        aspp_pred:      optional h x w or H x W int class map (ASPP prediction)
        erf_maps:       optional {(y, x): map} precomputed ERFs of feature
                        cells, each map h x w or H x W, non-negative
        mark:           optional h x w or H x W bool: pixels to highlight in
                        the "marked" overlay (e.g. ToyCity's cue-free pixels)
        mark_name:      the overlay's label, e.g. "cue-free" (1-30 characters)

    Example:
        >>> from ocrviz.widgets.synthetic import synthetic_data
        >>> d = synthetic_data(h=8, w=16, k=4)
        >>> d.sim_map.shape, d.region_weights.shape       # (128, 4), (4, 8, 16)
        ((128, 4), (4, 8, 16))
    """

    image: np.ndarray
    feat_hw: tuple[int, int]
    output_stride: int
    class_names: tuple[str, ...]
    palette: np.ndarray
    pred: np.ndarray
    sim_map: np.ndarray
    region_weights: np.ndarray
    gt: np.ndarray | None = None
    aspp_rates: tuple[int, ...] | None = None
    aspp_shares: np.ndarray | None = None
    aspp_pred: np.ndarray | None = None
    erf_maps: Mapping[tuple[int, int], np.ndarray] | None = field(default=None)
    mark: np.ndarray | None = None
    mark_name: str = "marked"

    def __post_init__(self) -> None:
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen: normalise once)
        img = np.asarray(self.image)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"image has shape {img.shape} and dtype {img.dtype}; expected H x W x 3 uint8 "
                             f"(use ocrviz.widgets.payload.to_uint8_image to convert a tensor)")
        put("image", _readonly(img))
        H, W = img.shape[:2]
        try:
            h, w = (int(v) for v in self.feat_hw)
        except (TypeError, ValueError):
            raise ValueError(f"feat_hw={self.feat_hw!r}; expected (h, w) ints") from None
        s = self.output_stride
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
            raise ValueError(f"output_stride={s!r}; expected a positive int (8 for the toy models, 4 for HRNet)")
        put("output_stride", int(s))
        if h < 1 or w < 1 or (h, w) != (-(-H // s), -(-W // s)):
            raise ValueError(f"feat_hw=({h}, {w}) does not match the {H} x {W} image at output_stride={s}; "
                             f"expected ({-(-H // s)}, {-(-W // s)}) = ceil(image size / stride)")
        put("feat_hw", (h, w))
        names = tuple(str(n) for n in self.class_names)
        k = len(names)
        if not 1 <= k <= 255:
            raise ValueError(f"{k} class names given; between 1 and 255 are supported (255 means ignore)")
        put("class_names", names)
        pal = np.asarray(self.palette)
        if pal.shape != (k, 3) or pal.dtype.kind not in "iuf" or (pal < 0).any() or (pal > 255).any():
            raise ValueError(f"palette has shape {pal.shape}; expected K x 3 = ({k}, 3) ints in 0..255 "
                             f"(one colour per class name)")
        put("palette", _readonly(pal.astype(np.uint8)))
        put("sim_map", _distribution("sim_map", self.sim_map, (h * w, k), (1,), "each row (over K regions)"))
        put("region_weights", _distribution("region_weights", self.region_weights, (k, h, w), (1, 2),
                                            "each region's map (over h x w cells)"))
        grids = [(h, w), (H, W)]
        put("pred", _int_map("pred", self.pred, grids, k, allow_ignore=False))
        if self.gt is not None:
            put("gt", _int_map("gt", self.gt, grids, k, allow_ignore=True))
        if self.aspp_rates is not None:
            rates = tuple(int(r) for r in self.aspp_rates)
            if not rates or min(rates) < 1:
                raise ValueError(f"aspp_rates={self.aspp_rates!r}; expected positive ints, e.g. (12, 24, 36)")
            put("aspp_rates", rates)
        if self.aspp_shares is not None:
            if self.aspp_rates is None:
                raise ValueError("aspp_shares given without aspp_rates; pass the ASPP dilation rates too")
            n = len(self.aspp_rates) + 2
            put("aspp_shares", _distribution("aspp_shares", self.aspp_shares, (h * w, n), (1,),
                                             f"each row (over the {n} branches 1x1, dilated, pool)"))
        if self.aspp_pred is not None:
            put("aspp_pred", _int_map("aspp_pred", self.aspp_pred, grids, k, allow_ignore=False))
        if self.erf_maps is not None:
            erfs = {}
            for key, m in dict(self.erf_maps).items():
                y, x = (int(v) for v in key)
                if not (0 <= y < h and 0 <= x < w):
                    raise ValueError(f"erf_maps key {key!r} is outside the {h} x {w} feature grid")
                erfs[(y, x)] = erf_to_cells(m, (h, w), s, (H, W))
            put("erf_maps", erfs)
        if self.mark is not None:
            m = np.asarray(self.mark)
            if m.shape not in grids or m.dtype != np.bool_:
                raise ValueError(f"mark has shape {m.shape} and dtype {m.dtype}; expected a bool map of the "
                                 f"feature grid {grids[0]} or the image {grids[1]}")
            put("mark", _readonly(m))
        name = self.mark_name
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= 30:
            raise ValueError(f"mark_name={name!r}; give a short label (1-30 characters), e.g. 'cue-free'")

    # ---- derived, shared by the widget, the tests and the notebooks ----
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_hw(self) -> tuple[int, int]:
        return self.image.shape[0], self.image.shape[1]

    def cell_of_pixel(self, py: int, px: int) -> tuple[int, int]:
        """Feature cell holding image pixel (py, px)."""
        h, w = self.feat_hw
        return min(h - 1, int(py) // self.output_stride), min(w - 1, int(px) // self.output_stride)

    def centre_pixel(self, y: int, x: int) -> tuple[int, int]:
        """The image pixel at the centre of feature cell (y, x) (where class maps are read)."""
        s, (H, W) = self.output_stride, self.image_hw
        return min(H - 1, y * s + s // 2), min(W - 1, x * s + s // 2)

    def _at(self, a: np.ndarray, y: int, x: int) -> int:
        if a.shape == tuple(self.feat_hw):
            return int(a[y, x])
        return int(a[self.centre_pixel(y, x)])

    def pred_at(self, y: int, x: int) -> int:
        """Predicted class of feature cell (y, x) (centre pixel when pred is H x W)."""
        return self._at(self.pred, y, x)

    def gt_at(self, y: int, x: int) -> int | None:
        """True class of cell (y, x); 255 = ignore; None without ground truth."""
        return None if self.gt is None else self._at(self.gt, y, x)

    def ranked_regions(self, y: int, x: int) -> list[tuple[int, str, float]]:
        """(k, name, weight) of cell (y, x)'s sim-map row, heaviest first (ties: lower k first)."""
        row = self.sim_map[y * self.feat_hw[1] + x]
        order = np.argsort(-row, kind="stable")
        return [(int(k), self.class_names[k], float(row[k])) for k in order]

    def context_map(self, y: int, x: int) -> np.ndarray:
        """h x w: sum_k sim[p, k] * region_weights[k], where cell (y, x) takes its context from."""
        row = self.sim_map[y * self.feat_hw[1] + x].astype(np.float64)
        return np.tensordot(row, self.region_weights.astype(np.float64), axes=1)  # h x w

    def to_npz(self, path: str) -> None:
        """Save the arrays the explorer shows (tests compare the DOM with these)."""
        h, w = self.feat_hw
        cells = [(y, x) for y in range(h) for x in range(w)]
        extra = {}
        if self.gt is not None:
            extra["true_cells"] = np.array([self.gt_at(y, x) for y, x in cells], np.int32).reshape(h, w)
        if self.aspp_rates is not None:
            extra["aspp_rates"] = np.array(self.aspp_rates, np.int32)
        if self.aspp_shares is not None:
            extra["aspp_shares"] = np.asarray(self.aspp_shares)                  # HW x 5
        if self.aspp_pred is not None:
            extra["aspp_pred"] = np.asarray(self.aspp_pred)
        if self.mark is not None:
            extra["mark"] = np.asarray(self.mark)
            extra["mark_name"] = np.array(self.mark_name)
        np.savez(path, sim_map=self.sim_map, region_weights=self.region_weights,
                 pred_cells=np.array([self.pred_at(y, x) for y, x in cells], np.int32).reshape(h, w),
                 feat_hw=np.array(self.feat_hw), output_stride=np.array(self.output_stride),
                 image_hw=np.array(self.image_hw), class_names=np.array(self.class_names), **extra)


# --------------------------------------------------------------------------- conversions

def to_uint8_image(image: Any) -> np.ndarray:
    """H x W x 3 uint8 from a numpy/torch image.

    Accepts H x W x 3 (uint8, or float in [0, 1]), 3 x H x W or 1 x 3 x H x W
    (torch or numpy, float); floats outside [0, 1] (normalised inputs) are
    min-max rescaled per image for display.
    """
    a = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3 and a.shape[0] == 3 and a.shape[2] != 3:
        a = a.transpose(1, 2, 0)                                    # H x W x 3
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"image has shape {a.shape}; expected H x W x 3, 3 x H x W or 1 x 3 x H x W")
    if a.dtype == np.uint8:
        return a
    a = a.astype(np.float64)
    lo, hi = float(a.min()), float(a.max())
    if lo < 0 or hi > 1:
        a = (a - lo) / (hi - lo if hi > lo else 1.0)
    return np.clip(np.round(a * 255), 0, 255).astype(np.uint8)


def erf_to_cells(erf: Any, feat_hw: tuple[int, int], output_stride: int,
                 image_hw: tuple[int, int]) -> np.ndarray:
    """|ERF| as a distribution over feature cells (h x w float32, sums to 1).

    ``erf`` is h x w or H x W (pixel maps are summed over each cell's
    s x s block), the same units as the OCR context map so both share one
    colour scale.  An all-zero map stays zero.
    """
    a = erf.detach().cpu().numpy() if hasattr(erf, "detach") else np.asarray(erf)
    a = np.abs(np.asarray(a, dtype=np.float64))
    (h, w), s, (H, W) = feat_hw, output_stride, image_hw
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[1:] in ((h, w), (H, W)):
        a = a.sum(0)                                                 # channels -> one map
    if a.shape == (H, W) and (H, W) != (h, w):
        pad = np.zeros((h * s, w * s))
        pad[:H, :W] = a
        a = pad.reshape(h, s, w, s).sum(axis=(1, 3))                 # h x w
    if a.shape != (h, w):
        raise ValueError(f"ERF map has shape {a.shape}; expected the feature grid {(h, w)} or the image {(H, W)}")
    if not np.isfinite(a).all():
        raise ValueError("ERF map has non-finite values")
    total = a.sum()
    return _readonly((a / total if total > 0 else a).astype(np.float32))


def quantise_u8(a: np.ndarray) -> tuple[np.ndarray, float]:
    """uint8 codes and scale with ``a ~= codes * scale`` (error <= scale / 2)."""
    mx = float(np.max(a)) if a.size else 0.0
    scale = mx / 255.0 if mx > 0 else 1.0
    return np.clip(np.round(a / scale), 0, 255).astype(np.uint8), scale


def png_bytes(image: np.ndarray) -> bytes:
    """Lossless PNG of an H x W x 3 uint8 image."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image, "RGB").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def jpeg_bytes(image: np.ndarray, quality: int = 90) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image, "RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def encode_erf(erf_cells: np.ndarray) -> tuple[bytes, float]:
    """h x w distribution -> (uint8 bytes, scale)."""
    q, scale = quantise_u8(erf_cells)
    return q.tobytes(), scale


def to_payload(data: ExplorerData, *, image_format: str = "png",
               image_override: np.ndarray | None = None) -> dict[str, Any]:
    """Widget traits for ``data``: JSON-able metadata plus ``bytes`` buffers.

    Buffers (little-endian, row-major): ``image`` (PNG/JPEG file bytes),
    ``pred``/``gt``/``aspp_pred`` uint8, ``sim_map`` float32 HW x K,
    ``region_q`` uint8 K x h x w with per-map ``region_scale``,
    ``aspp_shares`` float32 HW x n, ``erf_maps`` uint8 N x h x w, ``mark``
    uint8 0/1.
    Empty ``b""`` marks an absent optional buffer.  ``image_override``: a
    resized copy of the image to send instead (``image_hw`` keeps the true
    size; the view scales the picture to it).
    """
    if image_format not in ("png", "jpeg"):
        raise ValueError(f"image_format={image_format!r}; allowed: 'png' (lossless) or 'jpeg' (smaller)")
    k = data.num_classes
    h, w = data.feat_hw
    rq, rscale = zip(*(quantise_u8(m) for m in data.region_weights))   # K x (h x w, scale)
    region_q = np.stack(rq)                                               # K x h x w
    erf_cells, erf_q, erf_scales = [], [], []
    for (y, x), m in (data.erf_maps or {}).items():
        q, sc = quantise_u8(m)
        erf_cells.append([y, x])
        erf_q.append(q)
        erf_scales.append(sc)
    shown = data.image if image_override is None else image_override
    image = png_bytes(shown) if image_format == "png" else jpeg_bytes(shown)
    f32 = lambda a: np.ascontiguousarray(a, dtype="<f4").tobytes()  # noqa: E731
    u8 = lambda a: b"" if a is None else np.ascontiguousarray(a, dtype=np.uint8).tobytes()  # noqa: E731
    return {
        "image": image,
        "image_mime": f"image/{image_format}",
        "image_hw": list(data.image_hw),
        "feat_hw": [h, w],
        "output_stride": data.output_stride,
        "class_names": list(data.class_names),
        "palette": data.palette.tolist(),
        "pred": u8(data.pred),
        "pred_hw": list(data.pred.shape),
        "gt": u8(data.gt),
        "gt_hw": [] if data.gt is None else list(data.gt.shape),
        "sim_map": f32(data.sim_map),
        "region_q": region_q.tobytes(),
        "region_scale": [float(v) for v in rscale],
        # Convexity: every context map is a mix of region maps, so this bound
        # is a fixed colour scale that never clips OCR's context.
        "context_vmax": float(max(float(m.max()) for m in data.region_weights)) or 1.0,
        "aspp_rates": list(data.aspp_rates or []),
        "aspp_shares": b"" if data.aspp_shares is None else f32(data.aspp_shares),
        "aspp_pred": u8(data.aspp_pred),
        "aspp_pred_hw": [] if data.aspp_pred is None else list(data.aspp_pred.shape),
        "erf_cells": erf_cells,
        "erf_maps": b"".join(q.tobytes() for q in erf_q),
        "erf_scales": erf_scales,
        "mark": u8(data.mark),
        "mark_hw": [] if data.mark is None else list(data.mark.shape),
        "mark_name": data.mark_name,
        "num_classes": k,
    }


# --------------------------------------------------------------------------- capture -> data

def _np(t: Any) -> np.ndarray:
    return t.detach().float().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)


def _by_suffix(cache: Any, suffix: str) -> Any:
    names = [n for n in cache.names() if n == suffix or n.endswith("." + suffix)]
    if len(names) != 1:
        raise KeyError(f"expected one captured hook ending in {suffix!r}, found {names}; "
                       f"captured: {list(cache.names())}")
    return cache[names[0]]


def from_cache(cache: Any, image: Any, *, labels: Any = None, class_names: Sequence[str] | None = None,
               palette: Any = None, output_stride: int | None = None, batch_index: int = 0,
               aspp_cache: Any = None, aspp_rates: Sequence[int] | None = None,
               aspp_project_weight: Any = None,
               erf_maps: Mapping[tuple[int, int], Any] | None = None,
               mark: Any = None, mark_name: str = "marked") -> ExplorerData:
    """ExplorerData from an OCR capture ``Cache`` (and optionally an ASPP one).

    Reads ``cache.sim_map`` (B x HW x K), ``cache.region_weights``
    (B x K x h x w) and ``cache.logits`` (B x K x H x W, argmax = pred) at
    ``batch_index``.  ``image`` is the displayed image (H x W x 3 uint8 or a
    3 x H x W tensor), ``labels`` optional H x W ground truth (255 = ignore).
    With ``aspp_cache`` (captured from an ASPP model on the same input):
    branch shares from hooks ``hook_branch0..n`` + ``hook_pool`` (weighted by
    ``aspp_project_weight`` when given) and the ASPP prediction.  ``mark``:
    an optional H x W bool map shown by the overlay named ``mark_name``.

    Example:
        >>> logits, cache = ocrviz.run_with_cache(model, x)           # doctest: +SKIP
        >>> data = from_cache(cache, x[0], class_names=model.class_names)  # doctest: +SKIP
    """
    b = batch_index
    sim = _np(cache.sim_map)[b]                                    # HW x K
    rw = _np(cache.region_weights)[b]                              # K x h x w
    logits = _np(cache.logits)[b]                                  # K x H x W
    img = to_uint8_image(image)
    k, h, w = rw.shape
    if output_stride is None:
        output_stride = max(1, round(img.shape[0] / h))
    if class_names is None:
        class_names = [f"class {i}" for i in range(k)]
    pal = default_palette(k) if palette is None else palette
    gt = None if labels is None else _np(labels).astype(np.int64)
    if gt is not None and gt.ndim == 3 and gt.shape[0] == 1:
        gt = gt[0]
    kw: dict[str, Any] = {}
    if aspp_cache is not None:
        if aspp_rates is None:
            raise ValueError("aspp_cache given without aspp_rates; pass the ASPP head's rates, e.g. (12, 24, 36)")
        n = len(aspp_rates)
        branches = [_np(_by_suffix(aspp_cache, f"hook_branch{i}"))[b] for i in range(n + 1)]  # C x h x w each
        branches.append(_np(_by_suffix(aspp_cache, "hook_pool"))[b])                         # C x h x w
        pw = None if aspp_project_weight is None else _np(aspp_project_weight)
        kw.update(aspp_rates=tuple(aspp_rates), aspp_shares=aspp_branch_shares(branches, pw),
                  aspp_pred=_np(aspp_cache.logits)[b].argmax(0))
    return ExplorerData(image=img, feat_hw=(h, w), output_stride=int(output_stride),
                        class_names=tuple(class_names), palette=pal, pred=logits.argmax(0),
                        sim_map=sim, region_weights=rw, gt=gt, erf_maps=erf_maps,
                        mark=None if mark is None else _np(mark).astype(bool), mark_name=mark_name, **kw)
