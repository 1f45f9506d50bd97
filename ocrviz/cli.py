"""The ``ocrviz`` command line.

    ocrviz explain street.png --model toycity-ocr -o street.html          # explorer + where context comes from
    ocrviz explain a.png b.png --model ocrnet_hr18.pth --labels a_gt.png b_gt.png --pixel 120,300 -o ab.html
    ocrviz report toycity --model toycity-ocr --images 50 -o report.html --json report.json
    ocrviz report toycity --model toycity-ocr --model toycity-aspp --images 50 -o both.html   # side by side
    ocrviz report /data/cityscapes --model ocrnet_hr48_cityscapes.pth --device cuda -o cs.html
    ocrviz train --arch ocrnet --steps 3000 --out data/checkpoints/toycity-ocr   # = python -m ocrviz.train
    ocrviz evaluate toycity-ocr toycity-aspp --images 100                          # = python -m ocrviz.evaluate

``--model`` takes a shipped model name (``ocrviz.load_model``) or a checkpoint
file (``ocrviz.from_checkpoint``: ocrviz, official HRNet-OCR, MMSeg, openseg).
Every page written is standalone and offline (no CDN, a Content-Security-Policy
of ``default-src 'none'``).  Bad input (a missing file, an unknown model, a
wrong class count, an unreadable image, an unrecognised checkpoint, no GPU for
``--device cuda``) prints one line on stderr, naming what was given and what is
allowed, and exits with status 2; outputs are written to a temporary file in
the same folder and renamed, so nothing is ever half-written.  Set
``OCRVIZ_DEBUG=1`` to see the traceback instead.
"""
from __future__ import annotations

import argparse
import html
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ocrviz.explain_page import context_summary, resize_nearest as _resize_nearest  # noqa: F401 (public here)
from ocrviz.html_page import page
from ocrviz.cli_checks import (InputError, OneLineParser as _Parser, at_least, check_output,  # noqa: F401
                               glue_option_values, one_line, shown, write_outputs)

PROG = "ocrviz"
DELEGATED = {"train": "ocrviz.train", "evaluate": "ocrviz.evaluate"}
DEVICES = ("cpu", "cuda")
CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
DATA_LAYOUTS = ("'toycity' (the generated validation split)",
                "a Cityscapes folder (leftImg8bit/<split>/, gtFine/<split>/)",
                "an ADE20K folder (ADEChallengeData2016/images/, annotations/)",
                "an images-and-masks folder (images/<name>.png|jpg, masks/<name>.png)")


# ---- inputs ---------------------------------------------------------------------------------

def resolve_device(name: str | None) -> Any:
    import torch

    if name is None:
        return torch.device("cpu")
    if name not in DEVICES:
        raise InputError(f"--device {name!r}: allowed are {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device cuda: torch {torch.__version__} sees no CUDA GPU on this machine; "
                         "allowed here: --device cpu")
    return torch.device(name)


def _looks_like_file(spec: str) -> bool:
    return os.sep in spec or "/" in spec or spec.lower().endswith(CHECKPOINT_SUFFIXES) or os.path.exists(spec)


def load_model_arg(spec: str, *, flag: str = "--model", num_classes: int | None = None) -> Any:
    """A model from a shipped name (``ocrviz.load_model``) or a checkpoint file (``ocrviz.from_checkpoint``)."""
    from ocrviz.zoo import HEAD_MODELS, SHIPPED

    shipped = SHIPPED + HEAD_MODELS
    allowed = f"a shipped model ({', '.join(shipped)}) or a checkpoint file ({', '.join(CHECKPOINT_SUFFIXES)})"
    if spec in shipped and not os.path.exists(spec):
        from ocrviz.zoo import load_model

        if num_classes is not None:
            raise InputError(f"{flag} {spec}: --num-classes applies to checkpoint files only; "
                             f"{spec} has its own classes")
        try:
            return load_model(spec)
        except FileNotFoundError as e:
            raise InputError(f"{flag} {spec}: {one_line(e)}") from None
    official = spec.startswith("mmseg:")                  # downloaded once by from_checkpoint (ocrviz.download)
    if not official and not _looks_like_file(spec):
        raise InputError(f"{flag} {spec!r} is neither {allowed.replace(') or a', ') nor a')}")
    if not official and not os.path.isfile(spec):
        raise InputError(f"{flag} {spec!r}: no such file; give {allowed}")
    try:
        from ocrviz import from_checkpoint
    except (ImportError, AttributeError):
        raise InputError(f"{flag} {spec!r}: reading checkpoint files needs ocrviz.from_checkpoint, which this "
                         f"install does not have; give a shipped model ({', '.join(shipped)})") from None
    from ocrviz.checkpoints import CheckpointFormatError, CheckpointMismatchError

    try:
        return from_checkpoint(spec, num_classes=num_classes)
    except (CheckpointFormatError, CheckpointMismatchError, ValueError, KeyError, OSError, RuntimeError) as e:
        raise InputError(f"{flag} {spec!r}: {one_line(e)}") from None
    except Exception as e:  # torch.load's unpickling errors and the like: not a checkpoint we can read
        raise InputError(f"{flag} {spec!r} could not be read as a checkpoint ({type(e).__name__}: "
                         f"{one_line(e)}); give {allowed}") from None


def model_classes(model: Any) -> int | None:
    k = getattr(model, "num_classes", None)
    if isinstance(k, int):
        return k
    names = getattr(model, "class_names", None)
    return len(names) if names else None


def read_mask(path: str, flag: str = "--labels") -> np.ndarray:
    """A single-channel label PNG (class ids, 255 = ignore) -> H x W int64."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        raise InputError(f"{flag} {path!r}: no such file; give a single-channel label PNG (class ids, 255 = ignore)")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("P", "L", "I", "I;16", "1"):
                raise InputError(f"{flag} {path!r} is a {im.mode} image; allowed: a single-channel label PNG "
                                 "(modes P, L, I, I;16) holding class ids, 255 = ignore")
            return np.asarray(im).astype(np.int64)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{flag} {path!r} is not a readable image ({one_line(e)}); give a single-channel "
                         "label PNG (class ids, 255 = ignore)") from None


def check_labels(labels: np.ndarray, k: int, what: str) -> None:
    bad = (labels != 255) & ((labels < 0) | (labels >= k))
    if bad.any():
        vals = np.unique(labels[bad])[:5].tolist()
        raise InputError(f"{what} holds class ids {vals}, but the model has {k} classes; allowed: 0..{k - 1} "
                         "and 255 (ignore)")


def load_image_arg(path: str) -> np.ndarray:
    from ocrviz.data.images import ACCEPTED, ImageLoadError, load_image

    if not os.path.isfile(path):
        raise InputError(f"image {path!r}: no such file; give image files ({ACCEPTED.split(':')[0]})")
    try:
        image, notes = load_image(path)
    except (ImageLoadError, FileNotFoundError) as e:
        raise InputError(one_line(e)) from None
    for note in notes:                            # what was done to the pixels (a stretch, an alpha dropped)
        print(shown(f"{PROG}: {path}: {note}"), file=sys.stderr)
    return image


def parse_pixel(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        y, x = (int(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--pixel {text!r}: give the image pixel as Y,X (row,column), e.g. --pixel 120,300") from None
    if y < 0 or x < 0:
        raise InputError(f"--pixel {text!r}: row and column must be >= 0 (the top-left pixel is 0,0), "
                         "e.g. --pixel 120,300")
    return y, x


# ---- explain --------------------------------------------------------------------------------

def cmd_explain(args: argparse.Namespace) -> int:
    """Write a standalone offline page with the explorer for each image and where its context comes from."""
    out = check_output(args.output)
    device = resolve_device(args.device)
    pixel = parse_pixel(args.pixel)
    if args.labels and len(args.labels) != len(args.images):
        raise InputError(f"--labels: {len(args.labels)} mask(s) for {len(args.images)} image(s); "
                         "give one mask per image, in the same order")
    if args.max_side is not None and args.max_side < 32:
        raise InputError(f"--max-side {args.max_side}: allowed are 32 and more")
    images = [load_image_arg(p) for p in args.images]                   # every input checked before any work
    masks = [read_mask(p) for p in args.labels] if args.labels else [None] * len(images)
    for path, img, mask, mpath in zip(args.images, images, masks, args.labels or [None] * len(images)):
        if mask is not None and mask.shape != img.shape[:2]:
            raise InputError(f"--labels {mpath!r} is {mask.shape[0]}x{mask.shape[1]} but the image {path!r} is "
                             f"{img.shape[0]}x{img.shape[1]}; a mask must have its image's size")
        if pixel is not None and not (pixel[0] < img.shape[0] and pixel[1] < img.shape[1]):
            raise InputError(f"--pixel {args.pixel}: outside the image {path!r} ({img.shape[0]}x{img.shape[1]}); "
                             f"allowed rows 0..{img.shape[0] - 1}, columns 0..{img.shape[1] - 1}")
    model = load_model_arg(args.model, num_classes=args.num_classes)
    k = model_classes(model)
    aspp = None
    if args.aspp_model:
        aspp = load_model_arg(args.aspp_model, flag="--aspp-model")
        if k is not None and model_classes(aspp) not in (None, k):
            raise InputError(f"--aspp-model {args.aspp_model}: has {model_classes(aspp)} classes, --model "
                             f"{args.model} has {k}; the two models must share their classes")
    if k is not None:
        for mpath, mask in zip(args.labels or [], masks):
            check_labels(mask, k, f"--labels {mpath!r}")

    from ocrviz.normalisation import input_normalisation
    from ocrviz.widgets import Explorer

    mean, std = input_normalisation(model)          # the checkpoint's own (MMSeg config), else ImageNet's
    if aspp is not None and input_normalisation(aspp) != (mean, std):
        raise InputError(f"--aspp-model {args.aspp_model}: normalises its input with mean/std "
                         f"{input_normalisation(aspp)}, --model {args.model} with {(mean, std)} (None: ImageNet's); "
                         f"the explorer feeds both models one input")
    from ocrviz.explain_page import explain_section, index_html

    sections, summaries, anchors = [], [], []
    for i, (path, img, mask) in enumerate(zip(args.images, images, masks)):
        anchors.append(f"image-{i}")
        try:
            section, summary = explain_section(model, img, mask, name=os.path.basename(path), anchor=anchors[-1],
                                               aspp_model=aspp, device=device, mean=mean, std=std, pixel=pixel,
                                               max_side=args.max_side)
        except ValueError as e:                   # no OCR block, class names against K, ...
            raise InputError(f"--model {args.model} on {path!r}: {one_line(e)}") from None
        summary["image"] = str(path)
        sections.append(section)
        summaries.append(summary)
    if len(sections) > 1:
        sections.insert(0, index_html(summaries, anchors))
    intro = (f'<p class="note">Model: {html.escape(args.model)}'
             + (f"; ASPP model: {html.escape(args.aspp_model)}" if args.aspp_model else "")
             + ". Numbers from the captured similarity map (each feature cell's weights over the "
             "object regions). Click a pixel in an explorer to see its regions.</p>")
    title = args.title or f"ocrviz explain: {', '.join(os.path.basename(p) for p in args.images[:3])}" + \
        (" ..." if len(args.images) > 3 else "")
    write_outputs([(out, page(title, intro + "\n".join(sections)))])
    print(f"wrote {shown(out)} ({len(summaries)} image{'s' * (len(summaries) != 1)})", file=sys.stderr)
    if not args.quiet:
        for s in summaries:
            tops = ", ".join(f"{r['region']} {100 * r['share']:.0f}%" for r in s["top_regions"])
            print(shown(f"{s['image']}: {s['effective_regions']:.2f} effective regions of {s['num_regions']}; "
                        f"most context from {tops}"))
    return 0


# ---- report ---------------------------------------------------------------------------------

class FolderScenes:
    """(image, labels, name) folder dataset -> evaluate's items: normalised image padded to a multiple
    of 32 (labels padded with 255, so the padding counts nowhere), one image at a time.  ``norm``:
    the model's (mean, std) (``ocrviz.normalisation.input_normalisation``; (None, None): ImageNet)."""

    def __init__(self, folder: Any, k: int, n: int | None, max_side: int | None,
                 norm: tuple[Any, Any] = (None, None)) -> None:
        self.folder, self.k, self.max_side, self.norm = folder, k, max_side, norm
        self.n = len(folder) if n is None else min(n, len(folder))

    def __len__(self) -> int:
        return self.n

    def raw(self, i: int) -> tuple[np.ndarray, np.ndarray, str]:
        """Image and labels at the size the model sees (downscaled to ``max_side`` when given)."""
        image, labels, name = self.folder[i]
        if self.max_side and max(image.shape[:2]) > self.max_side:
            from PIL import Image

            s = self.max_side / max(image.shape[:2])
            size = (max(1, round(image.shape[1] * s)), max(1, round(image.shape[0] * s)))
            image = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
            labels = _resize_nearest(labels, (size[1], size[0]))
        check_labels(labels, self.k, f"the labels of {name!r}")
        return image, labels, name

    def __getitem__(self, i: int) -> dict:
        import torch

        from ocrviz.data.images import PAD_RGB, pad_to_stride
        from ocrviz.normalisation import normalise

        if i >= self.n:
            raise IndexError(i)
        image, labels, _ = self.raw(i)
        return {"image": normalise(pad_to_stride(image, 32, PAD_RGB), *self.norm)[0],       # 3 x H x W
                "labels": torch.from_numpy(pad_to_stride(labels.astype(np.int64), 32, 255))}


def open_data(spec: str, args: argparse.Namespace, k: int | None,
              norm: tuple[Any, Any] = (None, None)) -> tuple[Any, Any, list[str] | None, str]:
    """(dataset for evaluate, iterator factory of (uint8 image, labels), class names, description);
    ``norm``: the model's (mean, std) for a folder's images (ToyCity's models use ImageNet's)."""
    from ocrviz.data import folders

    if spec.lower() in ("toycity", "toycity-val"):
        from ocrviz.data.dataset import VAL_SEEDS, ToyCityDataset, val_split
        from ocrviz.data.toycity import CLASSES, make_scene

        n = 100 if args.images is None else args.images
        if not 1 <= n <= len(VAL_SEEDS):
            raise InputError(f"--images {n}: ToyCity's validation split has 1..{len(VAL_SEEDS)} scenes")
        if k is not None and k != len(CLASSES):
            raise InputError(f"--model {args.model} has {k} classes but ToyCity has {len(CLASSES)} "
                             f"({', '.join(CLASSES)}); give a model trained on ToyCity")
        ds = ToyCityDataset(val_split(n), height=args.height, width=args.width)

        def scenes() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for seed in ds.seeds:
                s = make_scene(int(seed), ds.height, ds.width)
                yield s.image, s.labels.astype(np.int64)
        return ds, scenes, list(CLASSES), f"ToyCity validation split, {n} scenes at {args.height}x{args.width}"
    root = Path(spec)
    if not root.is_dir():
        raise InputError(f"DATA {spec!r}: not a folder (nor 'toycity'); allowed: {'; '.join(DATA_LAYOUTS)}")
    try:
        if (root / "leftImg8bit").is_dir() or (root / "gtFine").is_dir():
            folder, what = folders.CityscapesFolder(root, split=args.split or "val"), "Cityscapes"
        elif (root / "ADEChallengeData2016").is_dir() or root.name == "ADEChallengeData2016":
            folder, what = folders.ADE20KFolder(root, split=args.split or "validation"), "ADE20K"
        elif (root / "images").is_dir() and (root / "masks").is_dir():
            folder, what = folders.MaskFolder(root), "images-and-masks folder"
        else:
            raise InputError(f"DATA {spec!r}: no layout recognised; allowed: {'; '.join(DATA_LAYOUTS)}")
        largest = folder.check(args.images)       # headers of the files used: a bad one is named before any work
    except InputError:
        raise
    except (FileNotFoundError, ValueError) as e:
        raise InputError(f"DATA {spec!r}: {one_line(e)}") from None
    names = list(folder.classes) or None
    if names and k is not None and k != len(names):
        raise InputError(f"--model {args.model} has {k} classes but the {what} at {spec!r} has {len(names)}; "
                         f"give a model trained on {what}")
    if k is None:
        raise InputError(f"--model {args.model}: its class count is unknown; give a model with num_classes")
    if args.images is not None and args.images < 1:
        raise InputError(f"--images {args.images}: allowed are 1 and more")
    ds = FolderScenes(folder, k, args.images, args.max_side, norm)
    s = min(1.0, args.max_side / max(largest)) if args.max_side and max(largest) else 1.0
    ds.largest = (round(largest[0] * s), round(largest[1] * s))           # what the model will see

    def scenes() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(len(ds)):
            image, labels, _ = ds.raw(i)
            yield pad_image(image), pad_labels(labels)
    n = len(ds)
    return ds, scenes, names, f"{what} at {spec} ({n} image{'s' * (n != 1)}" + \
        (f", longer side at most {args.max_side}" if args.max_side else "") + ")"


def pad_image(image: np.ndarray) -> np.ndarray:
    from ocrviz.data.images import PAD_RGB, pad_to_stride

    return pad_to_stride(image, 32, PAD_RGB)


def pad_labels(labels: np.ndarray) -> np.ndarray:
    from ocrviz.data.images import pad_to_stride

    return pad_to_stride(labels.astype(np.int64), 32, 255)


def cmd_report(args: argparse.Namespace) -> int:
    from ocrviz.report_cli import write_report

    out = check_output(args.output)
    out_json = check_output(args.json, "--json") if args.json else None
    if out_json is not None and out_json.resolve() == out.resolve():
        raise InputError(f"--json {args.json!r} is the same file as -o; give two different files")
    if args.bootstrap < 10:
        raise InputError(f"--bootstrap {args.bootstrap}: allowed are 10 and more (1000 is usual)")
    if args.explain_worst < 0:
        raise InputError(f"--explain-worst {args.explain_worst}: allowed are 0 (no pages) and more")
    device = resolve_device(args.device)
    specs = list(dict.fromkeys(args.model))                        # the same model twice: once
    models = [(spec, load_model_arg(spec, num_classes=args.num_classes)) for spec in specs]
    k = model_classes(models[0][1])
    for spec, m in models[1:]:
        if model_classes(m) != k:
            raise InputError(f"--model {spec}: has {model_classes(m)} classes, --model {specs[0]} has {k}; "
                             "models compared on the same images must share their classes")
    from ocrviz.normalisation import input_normalisation

    norms = {repr(input_normalisation(m)) for _, m in models}
    if len(norms) > 1 and not args.data.lower().startswith("toycity"):
        raise InputError(f"--model {', '.join(specs)}: the models normalise their input differently; "
                         "a folder is read once for all of them, so give models with the same mean/std")
    dataset, scenes, names, what = open_data(args.data, args, k, input_normalisation(models[0][1]))
    if getattr(dataset, "largest", None):         # the largest folder image must fit in memory (U4)
        from ocrviz.memory import check_image_fits

        for spec, m in models:
            try:
                check_image_fits(m, dataset.largest)
            except ValueError as e:
                raise InputError(f"DATA {args.data!r} with --model {spec}: {one_line(e)}".replace(
                    "ocrviz explain --max-side", "--max-side")) from None
    names = names or getattr(models[0][1], "class_names", None)
    batch = args.batch_size or (4 if args.data.lower().startswith("toycity") else 1)
    return write_report(args, models, dataset, scenes, names, what, device, batch, out, out_json)


# ---- the command ----------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="See where an OCRNet takes its context from.",
                epilog="Bad input exits with status 2 and one line on stderr. OCRVIZ_DEBUG=1 shows tracebacks.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    models = "a shipped model name (toycity-ocr, ...) or a checkpoint file (ocrviz, official HRNet-OCR, MMSeg, openseg)"

    e = sub.add_parser("explain", help="standalone offline page: the explorer for each image and where its "
                                       "context comes from", description=cmd_explain.__doc__)
    e.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    e.add_argument("--model", required=True, metavar="NAME|CHECKPOINT", help=models)
    e.add_argument("--aspp-model", default=None, metavar="NAME|CHECKPOINT", help="an ASPP model to compare with")
    e.add_argument("--labels", nargs="+", default=None, metavar="MASK",
                   help="ground-truth label PNGs, one per image (class ids, 255 = ignore)")
    e.add_argument("--pixel", default=None, metavar="Y,X", help="select this image pixel (row,column) in each explorer")
    e.add_argument("--num-classes", type=int, default=None, help="expected class count of a checkpoint file")
    e.add_argument("--max-side", type=int, default=1024, help="shrink images whose longer side exceeds this")
    e.add_argument("--device", default=None, help="cpu (default) or cuda")
    e.add_argument("--title", default=None)
    e.add_argument("--quiet", action="store_true", help="no per-image summary on stdout")
    e.add_argument("-o", "--output", required=True, metavar="OUT.html")
    e.set_defaults(func=cmd_explain)

    r = sub.add_parser("report", help="dataset-level metrics (and attention analyses) as an offline page",
                       description="Evaluate a model on a dataset and write an offline HTML report (and JSON).")
    r.add_argument("data", metavar="DATA", help="; ".join(DATA_LAYOUTS))
    r.add_argument("--model", required=True, action="append", metavar="NAME|CHECKPOINT",
                   help=models + "; repeat to compare several models on the same images (the first is the reference)")
    r.add_argument("--images", type=int, default=None, help="use the first N images (ToyCity: default 100)")
    r.add_argument("--split", default=None, help="Cityscapes: val (default), train, test; ADE20K: validation, training")
    r.add_argument("--height", type=int, default=256, help="ToyCity scene height (default 256)")
    r.add_argument("--width", type=int, default=512, help="ToyCity scene width (default 512)")
    r.add_argument("--max-side", type=int, default=None, help="folder data: shrink images whose longer side exceeds this")
    r.add_argument("--num-classes", type=int, default=None, help="expected class count of a checkpoint file")
    r.add_argument("--batch-size", type=int, default=None, help="ToyCity: 4; folders: 1 (images differ in size)")
    r.add_argument("--device", default=None, help="cpu (default) or cuda")
    r.add_argument("--no-analyses", action="store_true", help="metrics only (skip attention_report / context_flow)")
    r.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="bootstrap resamples over images for the confidence intervals (default 1000)")
    r.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the shuffled-rows counterfactual")
    r.add_argument("--explain-worst", type=int, default=3, metavar="N",
                   help="write an explain page for each model's N worst images and link them (default 3; 0: none)")
    r.add_argument("--title", default=None)
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("-o", "--output", required=True, metavar="OUT.html")
    r.add_argument("--json", default=None, metavar="OUT.json", help="also write the numbers as JSON")
    r.set_defaults(func=cmd_report)

    for name, module in DELEGATED.items():
        sub.add_parser(name, help=f"= python -m {module} (its options: {PROG} {name} --help)", add_help=False)
    return p


def check_sizes(args: argparse.Namespace) -> None:
    """Counts at least 1; image sides at least 32 (images are padded to multiples of 32; below that a
    scene or a shrunk image is mostly padding, and ToyCity cannot draw it)."""
    for flag in ("batch_size", "num_classes"):
        at_least(f"--{flag.replace('_', '-')}", getattr(args, flag, None), 1)
    for flag in ("max_side", "height", "width"):
        at_least(f"--{flag.replace('_', '-')}", getattr(args, flag, None), 32,
                 "images are padded to multiples of 32; give 32 or more")


def _delegate(command: str, argv: list[str]) -> int:
    import importlib

    module = importlib.import_module(DELEGATED[command])
    return int(module.main(argv, prog=f"{PROG} {command}") or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """``ocrviz COMMAND ...``; returns the exit status (0, or 2 for bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("OCRVIZ_DEBUG", "") not in ("", "0")
    command = argv[0] if argv else None
    try:
        if command in DELEGATED:
            try:
                return _delegate(command, argv[1:])
            except (ValueError, OSError) as e:      # bad options, missing or unwritable files
                if debug:
                    raise
                raise InputError(one_line(e)) from None
        parser = build_parser()
        args = parser.parse_args(glue_option_values(argv, parser))
        check_sizes(args)
        return args.func(args)
    except InputError as e:
        if debug:
            raise
        print(f"{PROG} {command or ''}: {one_line(e)}".replace("  ", " "), file=sys.stderr)
        return 2
    except ValueError as e:                      # a damaged or mismatched data file met during the work
        folders = sys.modules.get("ocrviz.data.folders")
        if debug or folders is None or not isinstance(e, folders.FolderItemError):
            raise
        print(f"{PROG} {command or ''}: {one_line(e)}".replace("  ", " "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
