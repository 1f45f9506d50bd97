"""Tensor-to-payload conversion for the explorer.

``from_cache`` builds an ``ExplorerData`` (``explorer_data.py``: what the
explorer shows, validated once) from an ``ocrviz`` capture ``Cache``;
``to_payload`` turns it into widget traits (small JSON values + binary
buffers).

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
import zlib
from typing import Any, Mapping, Sequence

import numpy as np

from .explorer_data import ExplorerData, default_palette, erf_to_cells
from .colours import overlay_colours

CF_ARRAYS = ("value", "pixels", "up_w", "up_b", "fuse_w", "fuse_b", "cls_w", "cls_b")   # PixelHead's fields
# The counterfactual head travels only while its pixel features stay small (the toy models: 1 MiB);
# an HRNet-W48 head at 1024 x 2048 would be 256 MiB.
CF_MAX_BYTES = 8 * 1024 * 1024
AUTO_PNG_MAX_BYTES = 512 * 1024   # image_format="auto": PNG when this small (a 1024 x 2048 street is 4 MB as PNG)
PRECISIONS = {"float32": 0, "fixed24": 24, "fixed16": 16}   # finest first; fixed: codes of values in [0, 1]


# --------------------------------------------------------------------------- compact buffers
def encode_buffer(raw: bytes, *, shuffle: int = 1, fixed: int = 0) -> dict[str, Any]:
    """Byte-plane shuffle (items of ``shuffle`` bytes) then deflate when that is smaller.

    Returns ``{"buf", "deflate", "shuffle", "fixed"}``; ``decode`` in explorer.js inverts it.
    """
    if shuffle > 1:
        raw = np.frombuffer(raw, np.uint8).reshape(-1, shuffle).T.tobytes()  # item bytes -> byte planes
    packed = zlib.compress(raw, 6)
    deflate = len(packed) < len(raw)
    return {"buf": packed if deflate else raw, "deflate": deflate, "shuffle": shuffle, "fixed": fixed}


def encode_numbers(a: np.ndarray, precision: str) -> dict[str, Any]:
    """Probabilities in [0, 1] as float32 (bit-exact) or fixed point (``fixed24``/``fixed16``)."""
    bits = PRECISIONS[precision]
    if bits == 0:
        return encode_buffer(np.ascontiguousarray(a, "<f4").tobytes(), shuffle=4)
    q = np.round(np.clip(a.astype(np.float64), 0, 1) * (2 ** bits - 1)).astype("<u4")  # codes
    nb = bits // 8
    raw = q.reshape(-1, 1).view(np.uint8)[:, :nb].tobytes()                            # low nb bytes, LE
    return encode_buffer(raw, shuffle=nb, fixed=bits)


def pack_for_widget(payload: dict[str, Any], data: ExplorerData, precision: str = "fixed24") -> dict[str, Any]:
    """The widget's state: the large buffers compressed as the standalone export does them.

    ``sim_map`` (and ``aspp_shares``) in ``precision`` (fixed24: within 3e-8), the region
    maps, class maps and counterfactual pixel features losslessly; each under ``packed[key]``,
    its raw trait left empty.  Keeps the widget's payload near the export's size.
    """
    out = dict(payload)
    packed: dict[str, Any] = {} if data.sim_map is None else {"sim_map": encode_numbers(data.sim_map, precision)}
    if data.aspp_shares is not None:
        packed["aspp_shares"] = encode_numbers(data.aspp_shares, precision)
    for key in ("region_q", "cf_pixels", "pred", "gt", "aspp_pred", "mark", "blame", "cell_class"):
        if out.get(key):
            packed[key] = encode_buffer(out[key], shuffle=4 if key == "cf_pixels" else 1)
    for key in packed:
        out[key] = b""
    out["packed"] = packed
    return out

__all__ = ["ExplorerData", "from_cache", "to_payload", "to_uint8_image", "erf_to_cells", "quantise_u8",
           "png_bytes", "jpeg_bytes", "encode_erf"]


# --------------------------------------------------------------------------- conversions

def to_uint8_image(image: Any, notes: list[str] | None = None) -> np.ndarray:
    """H x W x 3 uint8 from a numpy/torch image.

    Accepts H x W x 3, 3 x H x W or 1 x 3 x H x W (torch or numpy).  uint8 is
    kept; other values are scaled by one stated rule: all in [0, 1] -> times 255;
    all in [0, 255] -> kept (rounded); anything else (a normalised input) ->
    stretched linearly from [min, max] to 0-255 for display.  What was done is
    appended to ``notes``; without ``notes``, a stretch is announced with a
    warning.  NaN or infinite values are refused (``ValueError``), since no
    scaling can show them.
    """
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        raise TypeError(f"image is the path {str(image)!r}; read it first: "
                        "img, notes = ocrviz.data.images.load_image(path), then pass img")
    a = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3 and a.shape[0] == 3 and a.shape[2] != 3:
        a = a.transpose(1, 2, 0)                                    # H x W x 3
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"image has shape {a.shape}; expected H x W x 3, 3 x H x W or 1 x 3 x H x W")
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind not in "biuf":
        raise ValueError(f"image has dtype {a.dtype}; expected numbers (uint8, or floats / ints scaled as documented)")
    from ocrviz.data.images import to_byte_range

    a, rule, (lo, hi) = to_byte_range(a, "image has", "replace them first, e.g. "
                                      "np.nan_to_num(image, nan=0.0, posinf=1.0, neginf=0.0) for a [0, 1] image")
    note = {"unit": f"{image.dtype if hasattr(image, 'dtype') else 'float'} image in [0, 1] scaled by 255",
            "kept": "image values within 0-255 kept (rounded to uint8)",
            "stretched": f"image values [{lo:.4g}, {hi:.4g}] (not 0-255: a normalised input?) stretched linearly "
                         "to 0-255 for display; pass the uint8 image to show its own colours"}[rule]
    if rule == "stretched" and notes is None:
        import warnings

        warnings.warn(note, stacklevel=2)
    if notes is not None:
        notes.append(note)
    return np.clip(np.round(a), 0, 255).astype(np.uint8)


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


def class_mass(m: np.ndarray, cell_class: np.ndarray, k: int) -> list[float]:
    """K shares of a non-negative h x w map's mass on the cells of each class (``cell_class``), summing
    to 1 (all 0 for an empty map): sent with maps the page draws from 8-bit codes, so that its mass
    strip is exact (``ContextMap.mass_by_class`` without the off-grid entry)."""
    sums = np.bincount(np.asarray(cell_class).ravel(), weights=np.asarray(m, np.float64).ravel(), minlength=k)[:k]
    total = sums.sum()
    return (sums / total if total > 0 else sums).tolist()


def encode_erf(erf_cells: np.ndarray) -> tuple[bytes, float]:
    """h x w distribution -> (uint8 bytes, scale)."""
    q, scale = quantise_u8(erf_cells)
    return q.tobytes(), scale


def unavailable_panels(data: ExplorerData, *, cf_shipped: bool, live: bool) -> dict[str, str]:
    """{panel: one plain sentence} for each panel the view cannot draw, and why (the page shows it).

    Panels: ``counterfactuals`` (no re-runnable head, or a head that only the kernel can run in a
    saved page), ``aspp-erf`` (a saved page holds only the ERFs computed before it was saved).
    ``data.unavailable`` (the model's own reasons) comes first; ``live``: a widget with a kernel.
    """
    why = dict(data.unavailable or {})
    if data.pixel_head is None:
        why.setdefault("counterfactuals", "Counterfactuals need the model's OCR head, and this view was built "
                                          "from captured data without it.")
    elif not cf_shipped and not live:
        why.setdefault("counterfactuals", "Counterfactuals for a model this large run in the Python kernel, "
                                          "which a saved page does not have.")
    if data.aspp_rates is not None and not live:
        n = len(data.erf_maps or {})
        why.setdefault("aspp-erf", "The ERF is computed in the Python kernel, which a saved page does not have."
                       if n == 0 else f"This page holds the ERF of {n} selected pixel{'s' if n > 1 else ''} only; "
                                      f"the others need the Python kernel.")
    return why


def to_payload(data: ExplorerData, *, image_format: str = "png",
               image_override: np.ndarray | None = None, cf_in_page: bool | None = None,
               live: bool = False) -> dict[str, Any]:
    """Widget traits for ``data``: JSON-able metadata plus ``bytes`` buffers.

    Buffers (little-endian, row-major): ``image`` (PNG/JPEG file bytes),
    ``pred``/``gt``/``aspp_pred`` uint8, ``sim_map`` float32 HW x K,
    ``region_q`` uint8 K x h x w with per-map ``region_scale``,
    ``aspp_shares`` float32 HW x n, ``erf_maps`` uint8 N x h x w, ``mark``
    uint8 0/1.
    Empty ``b""`` marks an absent optional buffer.  ``image_format``: "png",
    "jpeg" or "auto" (PNG when at most ``AUTO_PNG_MAX_BYTES``).  ``image_override``: a
    resized copy of the image to send instead (``image_hw`` keeps the true
    size; the view scales the picture to it).  ``cf_in_page``: ship the
    counterfactual head (``cf_*``); None (default) when ``cf_fits_page(data)``.
    ``unavailable``: {panel: one plain sentence} (``unavailable_panels``; ``live``:
    for a widget with a kernel, whose own reasons the explorer adds).
    """
    if image_format not in ("png", "jpeg", "auto"):
        raise ValueError(f"image_format={image_format!r}; allowed: 'png' (lossless), 'jpeg' (smaller) or 'auto' "
                         f"(PNG up to {AUTO_PNG_MAX_BYTES // 1024} KiB, else JPEG)")
    k = data.num_classes
    h, w = data.feat_hw
    ocr = data.sim_map is not None                                        # else a model shown by its sites
    rq, rscale = zip(*(quantise_u8(m) for m in data.region_weights)) if ocr else ((), ())  # K x (h x w, scale)
    region_q = np.stack(rq) if ocr else np.zeros(0, np.uint8)             # K x h x w
    erf_cells, erf_q, erf_scales = [], [], []
    for (y, x), m in (data.erf_maps or {}).items():
        q, sc = quantise_u8(m)
        erf_cells.append([y, x])
        erf_q.append(q)
        erf_scales.append(sc)
    cell_class = data.cell_classes()                                      # h x w
    shown = data.image if image_override is None else image_override
    image = jpeg_bytes(shown) if image_format == "jpeg" else png_bytes(shown)   # encoded once
    if image_format == "auto":
        image_format = "png" if len(image) <= AUTO_PNG_MAX_BYTES else "jpeg"
        if image_format == "jpeg":
            image = jpeg_bytes(shown)
    cf = _cf_arrays(data, cf_in_page)
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
        "sim_map": f32(data.sim_map) if ocr else b"",
        "region_q": region_q.tobytes(),
        "region_scale": [float(v) for v in rscale],
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
        "overlay_colours": overlay_colours(),
        "blame": b"" if data.blame is None else u8(np.where(data.blame < 0, 255, data.blame.astype(np.int64))),
        "blame_hw": [] if data.blame is None else list(data.blame.shape),
        "cell_class": u8(cell_class),                         # h x w: what the mass strips count by
        # K x K float32: region k's mass on the cells of class c (the OCR strip, exact: sim row @ this)
        "region_mass": f32(np.stack([np.bincount(cell_class.ravel(), weights=m.ravel(), minlength=k)[:k]
                                     for m in data.region_weights.astype(np.float64)])) if ocr else b"",
        "erf_class_mass": [class_mass(m, cell_class, k) for m in (data.erf_maps or {}).values()],
        # OCR's head after the sim map (counterfactual re-runs in the view); float32, row-major
        **{f"cf_{name}": (b"" if a is None else f32(a)) for name, a in cf.items()},
        "unavailable": unavailable_panels(data, cf_shipped=cf["value"] is not None, live=live),
        # other heads' context sites, every cell's map (site_payload.py: base64 buffer specs inside)
        "sites": list(data.sites or []),
    }


def cf_fits_page(data: ExplorerData) -> bool:
    """True when ``data`` has a per-pixel head small enough to travel with the page (``CF_MAX_BYTES``)."""
    return data.pixel_head is not None and data.pixel_head.pixels.size * 4 <= CF_MAX_BYTES


def _cf_arrays(data: ExplorerData, in_page: bool | None) -> dict[str, np.ndarray | None]:
    ph = data.pixel_head
    if ph is None or not (cf_fits_page(data) if in_page is None else in_page):
        return dict.fromkeys(CF_ARRAYS)
    return ph.arrays()


# --------------------------------------------------------------------------- capture -> data

def _np(t: Any) -> np.ndarray:
    return t.detach().float().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)


def _aspp_site(cache: Any) -> Any:
    from ocrviz.context import dilated_taps

    sites = dilated_taps.find_sites(cache)
    if len(sites) != 1:
        raise KeyError(f"expected one ASPP head in aspp_cache (hooks <path>.hook_branch0, ... "
                       f"and <path>.hook_pool), found {[s.path for s in sites]}; captured: {list(cache.names())}")
    return sites[0]


def _cell_pred(cache: Any, b: int) -> np.ndarray | None:
    """h x w argmax of the main logits at feature resolution (``ocrviz.context.cell_classes``);
    None when the cache cannot tell (foreign trees keep no head logits)."""
    from ocrviz import context

    try:
        return context.cell_classes(cache, batch_index=b)
    except (ValueError, KeyError):
        return None


def from_cache(cache: Any, image: Any, *, labels: Any = None, class_names: Sequence[str] | None = None,
               palette: Any = None, output_stride: int | None = None, batch_index: int = 0,
               aspp_cache: Any = None, aspp_rates: Sequence[int] | None = None,
               aspp_project_weight: Any = "model",
               erf_maps: Mapping[tuple[int, int], Any] | None = None,
               mark: Any = None, mark_name: str = "marked", logits: Any = None,
               aspp_logits: Any = None, pixel_head: Any = None, blame: Any = None,
               unavailable: Mapping[str, str] | None = None) -> ExplorerData:
    """ExplorerData from an OCR capture ``Cache`` (and optionally an ASPP one).

    Reads ``cache.sim_map`` (B x HW x K), ``cache.region_weights``
    (B x K x h x w) and ``cache.logits`` (B x K x H x W, argmax = pred) at
    ``batch_index``.  ``image`` is the displayed image (H x W x 3 uint8 or a
    3 x H x W tensor), ``labels`` optional H x W ground truth (255 = ignore).
    With ``aspp_cache`` (captured from an ASPP model on the same input):
    branch shares from hooks ``hook_branch0..n`` + ``hook_pool``
    (``ocrviz.context.dilated_taps.branch_shares``: weighted by
    ``aspp_project_weight``; "model" = the captured head's projection when the
    cache knows it, None = the branch outputs' own norms) and the ASPP prediction.  ``mark``:
    an optional H x W bool map shown by the overlay named ``mark_name``.
    ``logits`` / ``aspp_logits`` (B x K x H x W): the prediction to show when
    the cache holds none (captures of foreign trees hold no ``logits``).

    Example:
        >>> logits, cache = ocrviz.run_with_cache(model, x)           # doctest: +SKIP
        >>> data = from_cache(cache, x[0], class_names=model.class_names)  # doctest: +SKIP
    """
    b = batch_index
    sim = _np(cache.sim_map)[b]                                    # HW x K
    rw = _np(cache.region_weights)[b]                              # K x h x w
    logits = _np(cache.logits if logits is None else logits)[b]    # K x H x W
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
        from ocrviz.context import dilated_taps

        site = _aspp_site(aspp_cache)
        pw = aspp_project_weight if aspp_project_weight is None or isinstance(aspp_project_weight, str) \
            else _np(aspp_project_weight)
        shares, _ = dilated_taps.branch_shares(aspp_cache, site, b, project_weight=pw)      # HW x nb
        kw.update(aspp_rates=tuple(aspp_rates), aspp_shares=shares,
                  aspp_pred=_np(aspp_cache.logits if aspp_logits is None else aspp_logits)[b].argmax(0))
    # each cell's class: the argmax of OCR's main logits at feature resolution (the head_logits hook), else
    # what the pixel head computes exactly (the head after the sim map is per cell), else the centre pixel's
    cell_class = _cell_pred(cache, b)
    if cell_class is None and pixel_head is not None:
        cell_class = pixel_head.predict_all(sim).reshape(h, w)
    return ExplorerData(image=img, feat_hw=(h, w), output_stride=int(output_stride),
                        class_names=tuple(class_names), palette=pal, pred=logits.argmax(0),
                        sim_map=sim, region_weights=rw, gt=gt, erf_maps=erf_maps,
                        mark=None if mark is None else _np(mark).astype(bool), mark_name=mark_name,
                        pixel_head=pixel_head, blame=blame, cell_class=cell_class, unavailable=unavailable, **kw)
