"""Dataset folders on disk as torch Datasets yielding (image, labels, name).

``image`` is H x W x 3 uint8 RGB, ``labels`` H x W int64 train ids with 255
= ignore, ``name`` the file stem.  Nothing is downloaded: point them at a copy
you already have.

    >>> ds = CityscapesFolder("/data/cityscapes", split="val")   # doctest: +SKIP
    >>> image, labels, name = ds[0]
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from ocrviz.data.images import load_image

IGNORE = 255


class FolderItemError(ValueError):
    """One image or mask of a dataset folder is damaged or does not fit its partner; the message names it."""

CITYSCAPES_CLASSES: list[str] = [
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle"]
CITYSCAPES_PALETTE: list[tuple[int, int, int]] = [
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32)]
# Cityscapes labelIds of the 19 evaluated classes, in train-id order; every other id -> 255.
_CITYSCAPES_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
LABELID_TO_TRAINID = np.full(256, IGNORE, np.uint8)
LABELID_TO_TRAINID[list(_CITYSCAPES_LABEL_IDS)] = np.arange(19)

ADE20K_CLASSES: list[str] = [
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair",
    "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion",
    "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper",
    "fireplace", "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table",
    "pillow", "screen door", "stairway", "river", "bridge", "bookcase", "blind", "coffee table",
    "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm", "kitchen island",
    "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light",
    "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman",
    "bottle", "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy",
    "washer", "plaything", "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag",
    "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name", "microwave", "pot",
    "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce",
    "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag"]


def _bit_palette(n: int) -> list[tuple[int, int, int]]:
    """A distinct colour per class (the PASCAL VOC bit-interleaving scheme), for
    ADE20K; not the palette of any particular toolbox."""
    out = []
    for i in range(1, n + 1):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
    return out


ADE20K_PALETTE: list[tuple[int, int, int]] = _bit_palette(150)


def labelids_to_trainids(label_ids: np.ndarray) -> np.ndarray:
    """Cityscapes labelIds (H x W, 0..33, -1 for the licence plate) -> train ids 0..18 / 255."""
    ids = np.asarray(label_ids).astype(np.int64)
    out = np.full(ids.shape, IGNORE, np.int64)
    ok = (ids >= 0) & (ids < 256)
    out[ok] = LABELID_TO_TRAINID[ids[ok]]
    return out


def _require_dir(path: Path, what: str, layout: str) -> None:
    if not path.is_dir():
        raise FileNotFoundError(f"{what}: folder {str(path)!r} not found.  Expected layout:\n{layout}")


def _read_mask(path: Path) -> np.ndarray:
    """A label PNG as stored: P/L/I -> H x W indices, RGB(A) -> H x W x 3 colours."""
    with Image.open(path) as im:
        if im.mode in ("RGB", "RGBA"):
            return np.asarray(im.convert("RGB"))
        return np.asarray(im)                                      # P: the raw indices


class _Pairs(Dataset):
    """(image path, mask path, name) triples -> (image, labels, name)."""
    classes: list[str] = []
    palette: list[tuple[int, int, int]] = []

    def __init__(self, pairs: list[tuple[Path, Path, str]]) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        image_path, mask_path, name = self.pairs[index]
        try:
            image, _ = load_image(image_path)
        except ValueError as e:                                   # ImageLoadError: names the file already
            raise FolderItemError(f"image {str(image_path)!r}: {e}") from None
        try:
            mask = _read_mask(mask_path)
        except (OSError, SyntaxError, ValueError) as e:           # PIL: unidentified, truncated, damaged
            raise FolderItemError(f"mask {str(mask_path)!r} could not be read ({type(e).__name__}: {e}); "
                                  "give a single-channel label PNG") from None
        try:
            labels = self.convert(mask, mask_path)
        except FolderItemError:
            raise
        except ValueError as e:
            raise FolderItemError(str(e)) from None
        if labels.shape != image.shape[:2]:
            raise FolderItemError(_size_mismatch(mask_path, labels.shape, image_path, image.shape))
        return image, labels, name

    def check(self, n: int | None = None) -> tuple[int, int]:
        """The first ``n`` (default all) pairs' headers (no pixels decoded): both files open as images, the mask
        has its image's size and a mode this folder reads.  ``FolderItemError`` naming the first bad file.
        Returns the (H, W) of the image with the most pixels."""
        largest = (0, 0)
        for image_path, mask_path, _ in self.pairs[:n]:
            try:
                with Image.open(image_path) as im:
                    size = im.size[::-1]                                      # H, W
                    if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):           # load_image turns these
                        size = size[::-1]
            except (OSError, SyntaxError, ValueError) as e:
                raise FolderItemError(f"image {str(image_path)!r} is not a readable image ({type(e).__name__}: "
                                      f"{e}); replace or remove it") from None
            try:
                with Image.open(mask_path) as m:
                    mode, msize = m.mode, m.size[::-1]
            except (OSError, SyntaxError, ValueError) as e:
                raise FolderItemError(f"mask {str(mask_path)!r} is not a readable image ({type(e).__name__}: "
                                      f"{e}); give a single-channel label PNG") from None
            self.check_mode(mode, mask_path)
            if tuple(msize) != tuple(size):
                raise FolderItemError(_size_mismatch(mask_path, msize, image_path, size))
            largest = max(largest, tuple(size), key=lambda s: s[0] * s[1])
        return largest

    def check_mode(self, mode: str, path: Path) -> None:
        """Refuse a mask mode ``convert`` cannot read (colour masks, unless a palette maps them)."""
        if mode in ("RGB", "RGBA") and not getattr(self, "colour_to_id", None):
            raise FolderItemError(f"mask {str(path)!r} is an {mode} (colour) image; this folder reads "
                                  "single-channel label PNGs (modes P, L, I) holding class ids, 255 = ignore"
                                  + ("; for colour masks pass palette=[(r, g, b), ...] to MaskFolder"
                                     if isinstance(self, MaskFolder) else ""))

    def convert(self, mask: np.ndarray, path: Path) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} images, {len(self.classes)} classes)"


def _size_mismatch(mask_path: Path, mask_hw: Sequence[int], image_path: Path, image_hw: Sequence[int]) -> str:
    return (f"mask {str(mask_path)!r} is {mask_hw[0]}x{mask_hw[1]} but its image {str(image_path)!r} is "
            f"{image_hw[0]}x{image_hw[1]}; image and mask must have the same size (resize the mask with nearest "
            "neighbour)")


class CityscapesFolder(_Pairs):
    """``root/leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with
    ``root/gtFine/<split>/<city>/*_gtFine_labelIds.png`` (mapped to the 19
    train ids, others 255).  A ``*_gtFine_labelTrainIds.png`` next to it is
    used as is when the labelIds file is absent."""
    classes, palette = CITYSCAPES_CLASSES, CITYSCAPES_PALETTE
    LAYOUT = ("  <root>/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png\n"
              "  <root>/gtFine/<split>/<city>/<name>_gtFine_labelIds.png")

    def __init__(self, root: str | os.PathLike, split: str = "val") -> None:
        root = Path(root)
        images, gt = root / "leftImg8bit" / split, root / "gtFine" / split
        _require_dir(images, f"Cityscapes split {split!r}", self.LAYOUT)
        _require_dir(gt, f"Cityscapes labels for split {split!r}", self.LAYOUT)
        pairs, missing = [], []
        for p in sorted(images.glob("*/*_leftImg8bit.png")):
            name = p.name[: -len("_leftImg8bit.png")]
            ids = gt / p.parent.name / f"{name}_gtFine_labelIds.png"
            train = gt / p.parent.name / f"{name}_gtFine_labelTrainIds.png"
            mask = ids if ids.is_file() else train if train.is_file() else None
            (pairs.append((p, mask, name)) if mask else missing.append(str(ids)))
        if not pairs and not missing:
            raise FileNotFoundError(f"no *_leftImg8bit.png under {str(images)!r}.  Expected layout:\n{self.LAYOUT}")
        if missing:
            raise FileNotFoundError(f"{len(missing)} Cityscapes label files missing, e.g. {missing[0]!r}")
        super().__init__(pairs)

    def convert(self, mask: np.ndarray, path: Path) -> np.ndarray:
        if mask.ndim != 2:
            raise ValueError(f"{path}: expected a single-channel labelIds PNG, got shape {mask.shape}")
        if path.name.endswith("_labelTrainIds.png"):
            return mask.astype(np.int64)
        return labelids_to_trainids(mask)


class ADE20KFolder(_Pairs):
    """``root/ADEChallengeData2016/images/{training,validation}/*.jpg`` with
    ``annotations/<same>/*.png``: value 0 ("other") -> 255, classes 1..150 -> 0..149."""
    classes, palette = ADE20K_CLASSES, ADE20K_PALETTE
    LAYOUT = ("  <root>/ADEChallengeData2016/images/{training,validation}/<name>.jpg\n"
              "  <root>/ADEChallengeData2016/annotations/{training,validation}/<name>.png")

    def __init__(self, root: str | os.PathLike, split: str = "validation") -> None:
        if split not in ("training", "validation"):
            raise ValueError(f"ADE20K split must be 'training' or 'validation', got {split!r}")
        base = Path(root)
        base = base if base.name == "ADEChallengeData2016" else base / "ADEChallengeData2016"
        images, ann = base / "images" / split, base / "annotations" / split
        _require_dir(images, f"ADE20K images ({split})", self.LAYOUT)
        _require_dir(ann, f"ADE20K annotations ({split})", self.LAYOUT)
        files = sorted(images.glob("*.jpg"))
        if not files:
            raise FileNotFoundError(f"no .jpg images under {str(images)!r}.  Expected layout:\n{self.LAYOUT}")
        missing = [str(ann / f"{p.stem}.png") for p in files if not (ann / f"{p.stem}.png").is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} ADE20K annotations missing, e.g. {missing[0]!r}")
        super().__init__([(p, ann / f"{p.stem}.png", p.stem) for p in files])

    def convert(self, mask: np.ndarray, path: Path) -> np.ndarray:
        if mask.ndim != 2:
            raise ValueError(f"{path}: expected a single-channel annotation PNG, got shape {mask.shape}")
        m = mask.astype(np.int64)
        return np.where((m >= 1) & (m <= 150), m - 1, IGNORE)


class MaskFolder(_Pairs):
    """Generic ``root/images/*.{png,jpg,jpeg}`` + ``root/masks/<stem>.png``.

    Index masks (P, L, I) are class ids as stored (255 = ignore).  RGB masks
    need ``palette``: a list of colours (position = class id) or a dict
    colour -> id (use 255 for ignore); a colour not in it is an error.
    Example: ``MaskFolder("mydata", palette=[(0, 0, 0), (255, 0, 0)])``.
    """
    LAYOUT = "  <root>/images/<name>.png|.jpg|.jpeg\n  <root>/masks/<name>.png"

    def __init__(self, root: str | os.PathLike, classes: Sequence[str] | None = None,
                 palette: Sequence[Sequence[int]] | Mapping[Sequence[int], int] | None = None) -> None:
        root = Path(root)
        _require_dir(root / "images", "images", self.LAYOUT)
        _require_dir(root / "masks", "masks", self.LAYOUT)
        files = sorted(p for p in (root / "images").iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if not files:
            raise FileNotFoundError(f"no .png/.jpg images in {str(root / 'images')!r}.  Expected layout:\n{self.LAYOUT}")
        missing = [p.name for p in files if not (root / "masks" / f"{p.stem}.png").is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} image(s) have no mask masks/<stem>.png, e.g. {missing[:3]}")
        if isinstance(palette, Mapping):
            self.colour_to_id = {tuple(int(v) for v in k): int(i) for k, i in palette.items()}
        else:
            self.colour_to_id = {tuple(int(v) for v in c): i for i, c in enumerate(palette or [])}
        self.classes = list(classes) if classes is not None else []
        self.palette = [tuple(c) for c in palette] if palette is not None and not isinstance(palette, Mapping) else []
        super().__init__([(p, root / "masks" / f"{p.stem}.png", p.stem) for p in files])

    def convert(self, mask: np.ndarray, path: Path) -> np.ndarray:
        if mask.ndim == 2:
            return mask.astype(np.int64)
        if not self.colour_to_id:
            raise ValueError(f"mask {str(path)!r} is an RGB mask; pass palette=[(r, g, b), ...] (position = class id) "
                             "or a dict {(r, g, b): id} to map colours to classes")
        key = (mask[..., 0].astype(np.int64) << 16) | (mask[..., 1].astype(np.int64) << 8) | mask[..., 2]
        colours, inverse, counts = np.unique(key.ravel(), return_inverse=True, return_counts=True)
        lut = {(r << 16) | (g << 8) | b: i for (r, g, b), i in self.colour_to_id.items()}
        ids = np.array([lut.get(int(c), -1) for c in colours], np.int64)
        if (ids < 0).any():
            bad = [(tuple(int(c) >> s & 255 for s in (16, 8, 0)), int(n)) for c, n, i in zip(colours, counts, ids) if i < 0]
            shown = ", ".join(f"{c} ({n} px)" for c, n in bad[:5])
            raise ValueError(f"{path}: {len(bad)} colour(s) not in the palette: {shown}; "
                             f"palette colours: {sorted(self.colour_to_id)[:10]}{' ...' if len(self.colour_to_id) > 10 else ''}. "
                             "Add them to the palette (map to 255 to ignore)")
        return ids[inverse].reshape(mask.shape[:2])
