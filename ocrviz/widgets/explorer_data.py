"""``ExplorerData``: what the explorer shows for one image, validated once.

Numpy only.  Every field is checked on construction (``field_checks``: shapes against the
image and the feature grid, distributions that must sum to 1, class indices
in range) and stored read-only, so the payload, the standalone export, the
tests and the notebooks all read the same arrays.  ``erf_to_cells`` brings an
ERF map into the units of the OCR context map (a distribution over cells).

Shapes: H x W image, h x w feature grid (HW = h * w cells), K classes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .field_checks import distribution, int_map, readonly

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


# error_blame's categories, in its order (ocrviz.analysis.blame.CATEGORIES; a widgets test checks it)
BLAME_CATEGORIES = ("region", "relation", "both", "neither")

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
        sim_map:        HW x K float, each row sums to 1 (pixel -> regions); None (with
                        region_weights) for a model without OCR, shown by its ``sites``
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
        blame:          optional h x w or H x W int: ``ocrviz.analysis.error_blame``'s
                        category per pixel (index into ``BLAME_CATEGORIES``; -1 where
                        the prediction is right or the label ignored)
        pixel_head:     optional ``ocrviz.analysis.pixel_head.PixelHead``: OCR's
                        head after the sim map, per pixel, so that the view can
                        re-run a pixel with an edited sim row (counterfactuals)
        cell_class:     optional h x w int: each feature cell's predicted class,
                        the argmax of the main logits at feature resolution (the
                        classes the mass strips count by); default ``cell_classes()``
        sites:          optional [{"label", "sites": [entry, ...]}, ...]: other heads'
                        context sites, every cell's map (``site_payload.head_sites``)
        unavailable:    optional {panel: sentence}: why a panel cannot be drawn for
                        this model (e.g. ``{"counterfactuals": "Counterfactuals are
                        off: ..."}``), one plain line each, shown by the page

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
    sim_map: np.ndarray | None
    region_weights: np.ndarray | None
    gt: np.ndarray | None = None
    aspp_rates: tuple[int, ...] | None = None
    aspp_shares: np.ndarray | None = None
    aspp_pred: np.ndarray | None = None
    erf_maps: Mapping[tuple[int, int], np.ndarray] | None = field(default=None)
    mark: np.ndarray | None = None
    mark_name: str = "marked"
    pixel_head: Any = None
    blame: np.ndarray | None = None
    cell_class: np.ndarray | None = None
    unavailable: Mapping[str, str] | None = None
    sites: Sequence[Mapping[str, Any]] | None = None

    def __post_init__(self) -> None:
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen: normalise once)
        img = np.asarray(self.image)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"image has shape {img.shape} and dtype {img.dtype}; expected H x W x 3 uint8 "
                             f"(use ocrviz.widgets.payload.to_uint8_image to convert a tensor)")
        put("image", readonly(img))
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
        put("palette", readonly(pal.astype(np.uint8)))
        if self.sim_map is None and self.region_weights is None:      # a model without OCR: its sites only
            if not self.sites:
                raise ValueError("no sim_map / region_weights (no OCR block) and no context sites: nothing to "
                                 "show; give OCR's arrays, or sites (ocrviz.widgets.site_payload.head_sites)")
        elif self.sim_map is None or self.region_weights is None:
            raise ValueError("give both sim_map and region_weights (an OCR block), or neither (a model shown by its "
                             "context sites)")
        else:
            put("sim_map", distribution("sim_map", self.sim_map, (h * w, k), (1,), "each row (over K regions)"))
            put("region_weights", distribution("region_weights", self.region_weights, (k, h, w), (1, 2),
                                                "each region's map (over h x w cells)"))
        grids = [(h, w), (H, W)]
        put("pred", int_map("pred", self.pred, grids, k, allow_ignore=False))
        if self.gt is not None:
            put("gt", int_map("gt", self.gt, grids, k, allow_ignore=True))
        if self.aspp_rates is not None:
            rates = tuple(int(r) for r in self.aspp_rates)
            if not rates or min(rates) < 1:
                raise ValueError(f"aspp_rates={self.aspp_rates!r}; expected positive ints, e.g. (12, 24, 36)")
            put("aspp_rates", rates)
        if self.aspp_shares is not None:
            if self.aspp_rates is None:
                raise ValueError("aspp_shares given without aspp_rates; pass the ASPP dilation rates too")
            n = len(self.aspp_rates) + 2
            put("aspp_shares", distribution("aspp_shares", self.aspp_shares, (h * w, n), (1,),
                                             f"each row (over the {n} branches 1x1, dilated, pool)"))
        if self.aspp_pred is not None:
            put("aspp_pred", int_map("aspp_pred", self.aspp_pred, grids, k, allow_ignore=False))
        if self.cell_class is not None:
            put("cell_class", int_map("cell_class", self.cell_class, [(h, w)], k, allow_ignore=False))
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
            put("mark", readonly(m))
        if self.blame is not None:
            bl = np.asarray(self.blame)
            if bl.shape not in grids or bl.dtype.kind not in "iu" or bl.min() < -1 or bl.max() >= len(BLAME_CATEGORIES):
                raise ValueError(f"blame has shape {bl.shape}; expected an int map of {grids} with values -1.."
                                 f"{len(BLAME_CATEGORIES) - 1} (ocrviz.analysis.error_blame(...).category)")
            put("blame", readonly(bl.astype(np.int8)))
        ph = self.pixel_head
        if ph is not None and (ph.pixels.shape[0] != h * w or ph.value.shape[0] != k or ph.cls_w.shape[0] != k):
            raise ValueError(f"pixel_head holds {ph.pixels.shape[0]} cells and {ph.value.shape[0]} regions; "
                             f"this image has {h * w} cells and {k} regions")
        why = dict(self.unavailable or {})
        for panel, text in why.items():
            if not (isinstance(panel, str) and isinstance(text, str) and text.strip() and "\n" not in text):
                raise ValueError(f"unavailable[{panel!r}]={text!r}; give {{panel name: one plain sentence}}")
        put("unavailable", why)
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
        row = self._ocr()[0][y * self.feat_hw[1] + x]
        order = np.argsort(-row, kind="stable")
        return [(int(k), self.class_names[k], float(row[k])) for k in order]

    def context_map(self, y: int, x: int) -> np.ndarray:
        """h x w: sum_k sim[p, k] * region_weights[k], where cell (y, x) takes its context from."""
        from ocrviz.context import ocr

        sim, regions = self._ocr()
        return ocr.weights(sim[y * self.feat_hw[1] + x], regions)  # h x w

    def _ocr(self) -> tuple[np.ndarray, np.ndarray]:
        if self.sim_map is None:
            raise ValueError("this explorer's model has no OCR block (no sim map); its context is in .sites "
                             "(ocrviz.context_maps(cache, pixel) for the float maps)")
        return self.sim_map, self.region_weights

    def panel_maps(self, y: int, x: int, erf: np.ndarray | None = None) -> dict[str, Any]:
        """{panel: ContextMap} of cell (y, x): "ocr-context", and with ASPP data "aspp-context",
        and "aspp-erf" when ``erf`` (h x w) is given or ``erf_maps`` holds the cell."""
        from ocrviz.context import dilated_taps, ocr
        from ocrviz.context.erf import from_cells

        p = y * self.feat_hw[1] + x
        out = {} if self.sim_map is None else {
            "ocr-context": ocr.from_arrays(self.sim_map[p], self.region_weights, (y, x), sources=self.class_names)}
        if self.aspp_shares is not None:
            out["aspp-context"] = dilated_taps.from_arrays(self.aspp_shares[p], self.aspp_rates, (y, x),
                                                           self.feat_hw)
        erf = (self.erf_maps or {}).get((y, x)) if erf is None else erf
        if erf is not None:
            out["aspp-erf"] = from_cells(erf, (y, x))
        return out

    def panel_masses(self, y: int, x: int, erf: np.ndarray | None = None) -> dict[str, dict[str, float]]:
        """{panel: {class name: mass, "off-grid": mass}} of cell (y, x): each panel's ``data-mass``.

        Every panel counts by the same partition, :meth:`cell_classes` (the OCR model's class per
        cell), so the three strips can be compared class by class."""
        cls = self.cell_classes()
        return {panel: m.mass_by_class(cls, self.class_names) for panel, m in self.panel_maps(y, x, erf).items()}

    def cell_classes(self) -> np.ndarray:
        """h x w uint8: each feature cell's predicted class: ``cell_class`` when given (the argmax of the
        main logits at feature resolution), else the prediction at the cell's centre pixel (``pred_at``)."""
        h, w = self.feat_hw
        if self.cell_class is not None:
            return np.asarray(self.cell_class, np.uint8)
        return np.array([[self.pred_at(y, x) for x in range(w)] for y in range(h)], np.uint8)

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
        if self.sim_map is not None:
            extra.update(sim_map=self.sim_map, region_weights=self.region_weights)
        np.savez(path,
                 pred_cells=np.array([self.pred_at(y, x) for y, x in cells], np.int32).reshape(h, w),
                 cell_class=self.cell_classes(),
                 feat_hw=np.array(self.feat_hw), output_stride=np.array(self.output_stride),
                 image_hw=np.array(self.image_hw), class_names=np.array(self.class_names), **extra)


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
    return readonly((a / total if total > 0 else a).astype(np.float32))
