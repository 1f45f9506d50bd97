"""Bring your own image: load anything Pillow reads as RGB, fit it to a model's
output stride, and crop results back to the original.

    >>> img, notes = load_image("street.png")                     # doctest: +SKIP
    >>> x, prep = prepare_image(img, output_stride=8)             # H' x W' x 3, multiples of 8
    >>> logits = model(to_tensor(x))                              # doctest: +SKIP
    >>> labels = prep.restore(logits.argmax(1))                   # 1 x H x W, original size
"""
from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from ocrviz.data.dataset import MEAN, normalize

ACCEPTED = ("any image Pillow can read: PNG, JPEG, BMP, GIF, TIFF, WebP, PPM/PGM, ... "
            "in any mode (RGB, RGBA, L, LA, P, 1, I;16, I, F, CMYK, YCbCr)")
# Padding colour: the normalisation mean, so padded pixels are exactly 0 after normalize().
PAD_RGB = tuple(int(round(m * 255)) for m in MEAN)


class ImageLoadError(ValueError):
    """A file that is not an image, or is damaged.  The message names the file."""


def _name(src) -> str:
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src)
    return str(getattr(src, "name", f"<{type(src).__name__}>"))


def to_byte_range(arr: np.ndarray, what: str, fix: str, unit_floats: bool = True) -> tuple[np.ndarray, str, tuple]:
    """Numbers -> 0..255 floats by one stated rule: ``(scaled, rule, (lo, hi))``.

    rule "unit": all in [0, 1] (and ``unit_floats``), times 255; "kept": all in
    [0, 255], unchanged; "stretched": any other range, linearly from [min, max].
    NaN or infinite values are refused (ValueError naming ``what``, the counts,
    the first one's row and column, and ``fix``): one +inf would black out a
    stretch, and NaN has no colour.
    """
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        y, x = (int(v) for v in np.argwhere(bad)[0][:2])
        raise ValueError(f"{what} {int(np.isnan(arr).sum())} NaN and {int(np.isinf(arr).sum())} infinite values "
                         f"(first at row {y}, column {x}); no scaling can show them: {fix}")
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if unit_floats and lo >= 0 and hi <= 1:
        return arr * 255, "unit", (lo, hi)
    if lo >= 0 and hi <= 255:
        return arr, "kept", (lo, hi)
    return (arr - lo) / (hi - lo if hi > lo else 1.0) * 255, "stretched", (lo, hi)


def _single_channel(arr: np.ndarray, mode: str, notes: list[str]) -> np.ndarray:
    """Integer / float single channel (I;16, I, F) -> H x W x 3 uint8 (``to_byte_range``'s rule; only F
    images count as [0, 1] floats), what was done appended to ``notes``."""
    arr, rule, (lo, hi) = to_byte_range(arr, f"{mode} image holds",
                                        "replace them (e.g. numpy.nan_to_num) and save the image again",
                                        unit_floats=mode == "F")
    notes.append({"unit": f"{mode} -> RGB: float values in [0, 1] scaled by 255, grey repeated to 3 channels",
                  "kept": f"{mode} -> RGB: values already within 0-255, grey repeated to 3 channels",
                  "stretched": f"{mode} -> RGB: stretched values [{lo:g}, {hi:g}] linearly to 0-255, "
                               "grey repeated to 3 channels"}[rule])
    return np.repeat(np.round(arr).astype(np.uint8)[..., None], 3, axis=2)


def _flatten_alpha(im: Image.Image, notes: list[str]) -> Image.Image:
    rgba = im.convert("RGBA")
    alpha = np.asarray(rgba)[..., 3]
    if alpha.min() < 255:
        notes.append(f"{im.mode} -> RGB: composited the transparent pixels onto white")
    else:
        notes.append(f"{im.mode} -> RGB: dropped an alpha channel that was fully opaque")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def to_rgb(im: Image.Image, notes: list[str] | None = None) -> np.ndarray:
    """A PIL image in any mode -> H x W x 3 uint8, appending what was done to ``notes``."""
    notes = [] if notes is None else notes
    mode = im.mode
    if mode == "RGB":
        return np.asarray(im, np.uint8).copy()
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
        return np.asarray(_flatten_alpha(im, notes))
    if mode.startswith("I") or mode == "F":
        return _single_channel(np.asarray(im), mode, notes)
    what = {"L": "greyscale, repeated to 3 channels", "1": "1-bit, black/white",
            "P": "palette indices looked up in the palette", "CMYK": "Pillow's naive conversion (no ICC profile)",
            }.get(mode, "Pillow's conversion")
    notes.append(f"{mode} -> RGB: {what}")
    return np.asarray(im.convert("RGB"), np.uint8).copy()


def load_image(path_or_file: str | os.PathLike | BinaryIO | bytes | Image.Image) -> tuple[np.ndarray, list[str]]:
    """Read an image -> (H x W x 3 uint8 RGB, notes on what was done).

    EXIF orientation is applied; the first frame of an animation is used.
    Raises ``ImageLoadError`` (a ValueError) naming the file for anything that
    is not a readable image, FileNotFoundError for a missing path.
    Example: ``img, notes = load_image("photo.jpg")``.
    """
    notes: list[str] = []
    if isinstance(path_or_file, Image.Image):
        im, name = path_or_file, "<PIL.Image>"
    else:
        name = _name(path_or_file)
        if isinstance(path_or_file, (str, os.PathLike)) and not os.path.isfile(path_or_file):
            raise FileNotFoundError(f"image file not found: {name!r}")
        if isinstance(path_or_file, (str, os.PathLike)):                # read now: no handle left open
            with open(path_or_file, "rb") as fh:
                src = io.BytesIO(fh.read())
        else:
            src = io.BytesIO(path_or_file) if isinstance(path_or_file, bytes) else path_or_file
        try:
            im = Image.open(src)
            im.load()                                             # decode now: truncation shows here
        except UnidentifiedImageError as e:
            raise ImageLoadError(f"{name!r} is not an image Pillow can identify; accepted: {ACCEPTED}") from e
        except Image.DecompressionBombError as e:
            raise ImageLoadError(f"{name!r} is too large to decode safely: {e}") from e
        except (OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
            raise ImageLoadError(f"{name!r} could not be decoded (truncated or damaged file?): {e}; "
                                 f"accepted: {ACCEPTED}") from e
    frames = getattr(im, "n_frames", 1)
    if frames > 1:
        notes.append(f"used the first of {frames} frames")
        im.seek(0)
    orientation = im.getexif().get(0x0112, 1)
    if orientation not in (None, 1):
        im = ImageOps.exif_transpose(im)
        notes.append(f"applied EXIF orientation {orientation}")
    try:
        return to_rgb(im, notes), notes
    except ValueError as e:
        raise ImageLoadError(f"{name!r}: {e}") from None


def pad_to_stride(x: np.ndarray | torch.Tensor, stride: int, value: float | tuple = 0) -> np.ndarray | torch.Tensor:
    """Pad bottom/right up to multiples of ``stride``.

    numpy: H x W or H x W x C (pads axes 0 and 1); torch: ... x H x W (pads the
    last two).  ``value`` fills the new pixels (a per-channel tuple for numpy HWC).
    Example: ``pad_to_stride(np.zeros((250, 250, 3)), 8).shape == (256, 256, 3)``.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if isinstance(x, torch.Tensor):
        h, w = x.shape[-2:]
        ph, pw = -h % stride, -w % stride
        return F.pad(x, (0, pw, 0, ph), value=float(value)) if ph or pw else x
    h, w = x.shape[:2]
    ph, pw = -h % stride, -w % stride
    if not (ph or pw):
        return x
    out = np.empty((h + ph, w + pw) + x.shape[2:], x.dtype)
    out[...] = np.asarray(value, x.dtype)
    out[:h, :w] = x
    return out


@dataclass(frozen=True)
class Prepared:
    """What ``prepare_image`` did: original -> resized -> padded (bottom/right)."""
    original_size: tuple[int, int]                                # H, W as loaded
    resized_size: tuple[int, int]                                 # H, W after resizing
    input_size: tuple[int, int]                                   # H, W given to the model
    scale: tuple[float, float]                                    # resized / original, per axis
    padding: tuple[int, int]                                      # rows added at the bottom, cols at the right
    policy: str
    notes: tuple[str, ...] = field(default=())

    def unpad(self, x: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """Drop the padding from ... x H x W (torch) or H x W (x C) (numpy)."""
        h, w = self.resized_size
        return x[..., :h, :w] if isinstance(x, torch.Tensor) else x[:h, :w]

    def restore(self, x: torch.Tensor, mode: str = "auto") -> torch.Tensor:
        """... x H x W at input size -> ... x H0 x W0 at the original size.

        Float maps are resized bilinearly, integer label maps by nearest
        neighbour (``mode="auto"``).  Example: ``prep.restore(logits.argmax(1))``.
        """
        x = self.unpad(torch.as_tensor(x))
        if tuple(x.shape[-2:]) == self.original_size:
            return x
        lead = x.shape[:-2]
        flat = x.reshape((-1, 1) + tuple(x.shape[-2:]))           # N x 1 x h x w
        if mode == "auto":
            mode = "bilinear" if flat.is_floating_point() else "nearest"
        if mode == "nearest":
            out = F.interpolate(flat.float(), size=self.original_size, mode="nearest").to(x.dtype)
        else:
            out = F.interpolate(flat.float(), size=self.original_size, mode=mode, align_corners=False)
        return out.reshape(lead + self.original_size)             # ... x H0 x W0


def prepare_image(img: np.ndarray, output_stride: int = 8, max_side: int | None = 1024,
                  policy: Literal["resize", "pad"] = "resize") -> tuple[np.ndarray, Prepared]:
    """Fit an H x W x 3 uint8 image to a model: shrink so the longer side is at
    most ``max_side`` (aspect kept; never enlarged), then reach a multiple of
    ``output_stride`` by ``policy``: "pad" (bottom/right, mean colour, so it
    normalises to 0) or "resize" (to the nearest multiple, slight aspect change).
    Returns (H' x W' x 3 uint8, Prepared record).
    Example: ``x, prep = prepare_image(img, 8)``; ``prep.restore(labels)``.
    """
    if policy not in ("resize", "pad"):
        raise ValueError(f"policy must be 'resize' or 'pad', got {policy!r}")
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"prepare_image expects H x W x 3 uint8 (see load_image), got {img.shape} {img.dtype}")
    if output_stride < 1:
        raise ValueError(f"output_stride must be >= 1, got {output_stride}")
    h0, w0 = img.shape[:2]
    if h0 < 1 or w0 < 1:
        raise ValueError(f"the image is {h0} x {w0} pixels; an image needs at least one row and one column")
    if max_side is not None and max_side < output_stride:
        raise ValueError(f"max_side={max_side} is below output_stride={output_stride}: nothing of the image "
                         f"would be left; give None (no shrinking) or {output_stride} and more")
    notes = []
    s = 1.0 if max_side is None else min(1.0, max_side / max(h0, w0))
    h, w = max(1, round(h0 * s)), max(1, round(w0 * s))
    if policy == "resize":
        h, w = (max(output_stride, round(v / output_stride) * output_stride) for v in (h, w))
    if (h, w) != (h0, w0):
        img = np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))
        notes.append(f"resized {h0}x{w0} -> {h}x{w}")
    out = pad_to_stride(img, output_stride, PAD_RGB)
    ph, pw = out.shape[0] - h, out.shape[1] - w
    if ph or pw:
        notes.append(f"padded {ph} rows at the bottom and {pw} columns at the right to a multiple of {output_stride}")
    return np.ascontiguousarray(out), Prepared((h0, w0), (h, w), out.shape[:2], (h / h0, w / w0),
                                               (ph, pw), policy, tuple(notes))


def crop_back(x: torch.Tensor, prepared: Prepared, mode: str = "auto") -> torch.Tensor:
    """Same as ``prepared.restore(x, mode)``."""
    return prepared.restore(x, mode)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> 1 x 3 x H x W normalised float (model input)."""
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"to_tensor expects H x W x 3 uint8, got shape {img.shape}")
    return normalize(img).unsqueeze(0)                            # 1 x 3 x H x W
