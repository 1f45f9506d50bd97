"""Segmentation metrics: confusion matrix, mIoU, per-class IoU, pixel accuracy,
and accuracy on ToyCity's designed-ambiguous pixels: all of them, per kind
(window / surface / panel), and the cue-free ones (no other appearance within
the backbone's receptive field; :mod:`ocrviz.data.ambiguity`).

Example::

    from ocrviz.evaluate import evaluate
    report = evaluate(model, ToyCityDataset(val_split(50)))
    report["miou"], report["ambiguous_acc"], report["cue_free_acc"]
"""
from __future__ import annotations

import contextlib
import os
import time
import weakref
from typing import Any, Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from ocrviz.data.toycity import AMBIGUITY_KINDS

IGNORE_INDEX = 255


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """K x K counts, rows = true class, columns = predicted class."""
    pred, target = np.asarray(pred).ravel(), np.asarray(target).ravel()
    if pred.shape != target.shape:
        raise ValueError(f"pred has {pred.size} pixels, target {target.size}; they must match")
    keep = target != ignore_index
    bad = (target[keep] < 0) | (target[keep] >= num_classes)
    if bad.any():
        raise ValueError(f"target holds class ids {np.unique(target[keep][bad])[:5].tolist()} outside "
                         f"0..{num_classes - 1} (and {ignore_index} = ignore)")
    idx = target[keep].astype(np.int64) * num_classes + pred[keep].astype(np.int64)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def metrics_from_confusion(conf: np.ndarray, class_names: list[str] | None = None) -> dict:
    """mIoU over the classes that occur (in target or prediction), per-class IoU, pixel accuracy."""
    conf = conf.astype(np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    present = union > 0
    iou = np.where(present, tp / np.maximum(union, 1), np.nan)
    names = class_names or [str(k) for k in range(len(tp))]
    return {
        "miou": float(np.nanmean(iou)) if present.any() else float("nan"),
        "pixel_acc": float(tp.sum() / max(conf.sum(), 1)),
        "per_class_iou": {n: (None if np.isnan(v) else round(float(v), 4)) for n, v in zip(names, iou)},
    }


def resolve_device(device: str | torch.device | None, model: torch.nn.Module | None = None) -> torch.device:
    """``device`` as a torch device (checked: cuda only where torch sees a GPU); None: the model's own."""
    if device is None:
        if model is not None:
            return next((p.device for p in model.parameters()), torch.device("cpu"))
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r} is not a device torch knows; allowed: 'cpu', 'cuda'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} but torch {torch.__version__} sees no CUDA GPU here; "
                         "allowed here: 'cpu'")
    return dev


def class_ids(logits: torch.Tensor) -> torch.Tensor:
    """B x K x H x W -> B x H x W: ``logits.argmax(1)``, computed as ``max(1).indices``.

    The same result (the first maximum on ties, as argmax), but on torch's
    CPU build ``argmax(1)`` over a contiguous B x K x H x W tensor costs about
    twice a toy model's forward (34 ms per 256 x 512 image on 2 cores) while
    ``max(1).indices`` takes under 1 ms."""
    return logits.max(1).indices


def _logits(model: torch.nn.Module, images: torch.Tensor, aux: bool) -> torch.Tensor:
    if not aux:
        out = model(images)
        if not isinstance(out, torch.Tensor):          # official HRNet-OCR [aux, main], openseg, dict 'out'
            from ocrviz.capture.outputs import find_align_corners, main_logits, upsample_logits

            out = upsample_logits(main_logits(out), tuple(images.shape[-2:]), find_align_corners(model))
        return out
    out = model(images, return_aux=True)[1]
    if out is None:
        raise ValueError(f"{type(model).__name__} ({getattr(model, 'arch', '?')}) has no auxiliary head; "
                         "aux=True works for OCRNet (its soft object regions)")
    return out


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, aux: bool = False) -> torch.Tensor:
    """B x 3 x H x W normalised float -> B x H x W int64 class ids.

    ``aux=True``: the auxiliary head's classes instead (for OCRNet, its soft
    object regions); a model without one raises ``ValueError``."""
    return class_ids(_logits(model, images, aux))


# ---- numpy's BLAS threads -------------------------------------------------------------------
# ToyCity's painter multiplies small matrices with numpy; OpenBLAS then keeps its own pool of
# threads spinning next to torch's (on 2 cores they take turns with the forward).  The pool size
# can only be set from the environment before numpy is imported, or through OpenBLAS's own
# setter, which is what this does (threadpoolctl does the same; it is not a dependency).

def _openblas() -> tuple | None:
    """(get, set) of the OpenBLAS numpy uses, or None (another BLAS, or not found)."""
    global _BLAS
    if _BLAS is not None:
        return _BLAS or None
    import ctypes
    import glob

    found: tuple = ()
    libs = sorted(glob.glob(os.path.join(os.path.dirname(np.__file__) + ".libs", "*openblas*")))
    try:                                    # the library numpy already loaded (conda/system numpy)
        with open("/proc/self/maps") as f:
            libs += sorted({line.split()[-1] for line in f if "openblas" in line.rsplit("/", 1)[-1]})
    except OSError:
        pass
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get, put in (("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
                         ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
                         ("openblas_get_num_threads", "openblas_set_num_threads")):
            if hasattr(lib, get) and hasattr(lib, put):
                g, s = getattr(lib, get), getattr(lib, put)
                g.restype, s.argtypes = ctypes.c_int, [ctypes.c_int]
                found = (g, s)
                break
        if found:
            break
    _BLAS = found
    return found or None


_BLAS: tuple | None = None


@contextlib.contextmanager
def numpy_blas_threads(n: int = 1):
    """Run the block with numpy's OpenBLAS limited to ``n`` threads (restored after).

    A no-op where numpy uses another BLAS.  ``evaluate`` uses it so that
    rendering scenes (numpy) and the forward (torch) do not fight over cores."""
    blas = _openblas()
    if blas is None:
        yield
        return
    get, put = blas
    before = int(get())
    put(int(n))
    try:
        yield
    finally:
        put(before)


# ---- rendered scenes, once ------------------------------------------------------------------
SCENE_CACHE_BYTES = 256 * 2**20     # per dataset; a larger split streams (rendered on every pass)
_KEEP = ("image", "labels", "ambiguous", "ambiguity", "cue_free")
_SCENES: "weakref.WeakKeyDictionary[Any, _SceneCache]" = weakref.WeakKeyDictionary()


def _cacheable(dataset: Any) -> bool:
    """Deterministic rendered datasets: ToyCity without augmentation (an item depends on its seed only)."""
    from ocrviz.data.dataset import ToyCityDataset

    return isinstance(dataset, ToyCityDataset) and not dataset.augment and \
        len(dataset) * dataset.height * dataset.width * 8 <= SCENE_CACHE_BYTES


def _dataset_key(dataset: Any) -> tuple:
    return (tuple(dataset.seeds), dataset.height, dataset.width, dataset.with_cue_free)


class _SceneCache:
    """The batches of one pass, compact (uint8 image when it normalises back bit for bit, uint8 labels)."""

    def __init__(self, key: tuple) -> None:
        self.key = key
        self.batches: list[dict] = []
        self.complete = False

    def add(self, batch: dict, u8: torch.Tensor | None = None) -> None:
        """Keep one batch; ``u8``: its B x H x W x 3 uint8 image, when ``batch["image"]`` is ``normalize(u8)``."""
        from ocrviz.data.dataset import denormalize, normalize

        out = {k: batch[k] for k in _KEEP if k in batch}
        if u8 is None:
            u8 = torch.from_numpy(denormalize(batch["image"]))          # B x H x W x 3
            if torch.equal(normalize(u8), batch["image"]):
                out["image"] = u8
        else:
            out["image"] = u8
        lab = batch["labels"]
        if lab.numel() and 0 <= int(lab.min()) and int(lab.max()) <= 255:
            out["labels"] = lab.to(torch.uint8)
        self.batches.append(out)

    def replay(self, batch_size: int):
        from ocrviz.data.dataset import normalize

        def expand(b: dict) -> dict:
            b = dict(b)
            if b["image"].dtype == torch.uint8:
                b["image"] = normalize(b["image"])
            b["labels"] = b["labels"].long()
            return b

        sizes = {len(b["labels"]) for b in self.batches[:-1]}
        if sizes <= {batch_size} and len(self.batches[-1]["labels"]) <= batch_size:
            for b in self.batches:
                yield expand(b)
            return
        for k in range(0, sum(len(b["labels"]) for b in self.batches), batch_size):   # another batch size
            rows = [(b, i) for b in self.batches for i in range(len(b["labels"]))][k:k + batch_size]
            yield expand({key: torch.stack([b[key][i] for b, i in rows]) for key in self.batches[0]})


def _batches(dataset: Any, batch_size: int, cache_scenes: bool, num_workers: int):
    """The dataset's batches; a deterministic ToyCity split is rendered once and replayed after.

    A ToyCity dataset without augmentation and ``num_workers=0`` is rendered here, without a
    DataLoader (:func:`_rendered_batches`): the same batches, and the cache keeps their uint8
    images as rendered instead of recovering them from the normalised ones."""
    cache = None
    if cache_scenes and _cacheable(dataset):
        key = _dataset_key(dataset)
        cache = _SCENES.get(dataset)
        if cache is not None and cache.key == key and cache.complete:
            yield from cache.replay(batch_size)
            return
        cache = _SceneCache(key)
    if num_workers == 0 and _renderable(dataset):
        batches = _rendered_batches(dataset, batch_size)
    else:
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
        batches = ((batch, None) for batch in loader)
    n = 0
    for batch, u8 in batches:
        if cache is not None:
            cache.add(batch, u8)
        n += len(batch["labels"])
        yield batch
    if cache is not None and n == len(dataset):
        cache.complete = True
        _SCENES[dataset] = cache


def _renderable(dataset: Any) -> bool:
    from ocrviz.data.dataset import ToyCityDataset

    return isinstance(dataset, ToyCityDataset) and not dataset.augment


def _rendered_batches(dataset: Any, batch_size: int):
    """(batch, uint8 images) of a ToyCity dataset without augmentation, straight from
    ``dataset.render``: the batch holds what the DataLoader would collate from ``dataset[i]``
    (``normalize`` of the stacked uint8 images equals the stacked normalised ones, element by
    element), less ``instances`` and ``seed``, which evaluate does not read.

    Rendering the next batch in a background thread during the forward was measured and
    dropped: on 2 cores torch's forward already keeps both busy (0.535 x forward-only against
    0.552 x here, A/B interleaved)."""
    from ocrviz.data.dataset import normalize

    keys = [k for k in _KEEP if k != "image"]
    for lo in range(0, len(dataset), batch_size):
        rows = [dataset.render(i) for i in range(lo, min(lo + batch_size, len(dataset)))]
        u8 = torch.from_numpy(np.stack([r["image"] for r in rows]))   # B x H x W x 3
        batch = {k: torch.from_numpy(np.stack([r[k] for r in rows])) for k in keys if k in rows[0]}
        yield dict(image=normalize(u8), **batch), u8


def forget_scenes(dataset: Any = None) -> None:
    """Drop the rendered scenes ``evaluate`` keeps for ``dataset`` (all datasets when None)."""
    if dataset is None:
        _SCENES.clear()
    else:
        _SCENES.pop(dataset, None)


@torch.no_grad()
def evaluate(model: torch.nn.Module, dataset: Iterable[dict], num_classes: int | None = None,
             class_names: list[str] | None = None, batch_size: int = 4, aux: bool = False, *,
             device: str | torch.device | None = None, progress: bool = False, cache_scenes: bool = True,
             num_workers: int = 0, per_image: bool = False) -> dict:
    """Evaluate a model on a dataset of dicts with ``image``, ``labels`` and
    optionally ``ambiguous`` (as yielded by ``ToyCityDataset``).

    Returns mIoU, per-class IoU, pixel accuracy, the confusion matrix (list
    of lists) and the CPU time per image; with ``ambiguous`` in the items also
    ``ambiguous_acc``, with ``ambiguity`` codes ``ambiguous_acc_by_kind``, and
    with ``cue_free`` masks ``cue_free_acc`` (each None where no pixel counts,
    next to its ``*_pixels`` count).  ``aux=True`` scores the auxiliary head
    (OCRNet's soft object regions) instead of the final prediction.

    ``device``: where the forward runs; the model is moved there (default: the
    model's own device; "cuda" only where torch sees a GPU).  ``progress``: a tqdm bar.  A ToyCity split
    without augmentation is rendered once and kept (compact, at most
    ``SCENE_CACHE_BYTES`` per dataset, for as long as the dataset object
    lives), so that evaluating it again (training validation, several models)
    costs the forwards only; ``cache_scenes=False`` streams instead.
    ``num_workers``: DataLoader worker processes that render (default 0: here).
    numpy's BLAS runs on one thread meanwhile (:func:`numpy_blas_threads`).
    ``per_image``: also ``per_image_confusion``, N x K x K int64 (one matrix per
    image, in dataset order; they sum to ``confusion``), for per-image metrics
    and confidence intervals over images.
    """
    was_training = model.training
    model.eval()
    dev = resolve_device(device, model)
    if device is not None:
        model.to(dev)                                      # as Explorer(device=) does
    k = num_classes or model.num_classes
    names = class_names or getattr(model, "class_names", None)
    conf = torch.zeros(k * k, dtype=torch.int64)
    hits = dict.fromkeys(["ambiguous", "cue_free", *AMBIGUITY_KINDS[1:]], 0)
    totals = dict(hits)
    n = 0
    seconds = 0.0
    per_conf: list[torch.Tensor] = []
    try:
        total = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        total = None
    bar = tqdm(total=total, desc="evaluate", unit="img", disable=not progress)
    try:
        with numpy_blas_threads(1):
            for batch in _batches(dataset, batch_size, cache_scenes, num_workers):
                t0 = time.perf_counter()
                pred = predict(model, batch["image"].to(dev), aux).cpu()
                seconds += time.perf_counter() - t0
                labels = batch["labels"]
                all_valid = _all_valid(labels, k)            # no ignore pixel, every id a class: no masking
                if per_image:
                    rows = [_confusion(pred[b], labels[b], k, all_valid=all_valid) for b in range(len(labels))]
                    per_conf += rows
                    conf += torch.stack(rows).sum(0)
                else:
                    conf += _confusion(pred, labels, k, all_valid=all_valid)
                masks = {key: batch[key] for key in ("ambiguous", "cue_free") if key in batch}
                if "ambiguity" in batch:
                    masks.update({kind: batch["ambiguity"] == code for code, kind in enumerate(AMBIGUITY_KINDS)
                                  if code})
                if masks:
                    right = pred == labels                                      # B x H x W each
                    if not all_valid:
                        right &= labels != IGNORE_INDEX
                    for key, mask in masks.items():
                        if all_valid and mask.dtype == torch.bool:
                            hits[key] += int(torch.count_nonzero(right & mask))
                            totals[key] += int(torch.count_nonzero(mask))
                        else:
                            hits[key] += int((right & mask).sum())
                            totals[key] += int((mask & (labels != IGNORE_INDEX)).sum())
                n += len(labels)
                bar.update(len(labels))
    finally:
        bar.close()
        model.train(was_training)
    conf = conf.reshape(k, k).numpy()
    out = metrics_from_confusion(conf, names)
    acc = {key: (hits[key] / totals[key]) if totals[key] else None for key in hits}
    out.update(
        ambiguous_acc=acc["ambiguous"],
        ambiguous_pixels=totals["ambiguous"],
        ambiguous_acc_by_kind={kind: acc[kind] for kind in AMBIGUITY_KINDS[1:]},
        cue_free_acc=acc["cue_free"],
        cue_free_pixels=totals["cue_free"],
        n_images=n,
        seconds_per_image=seconds / max(n, 1),
        confusion=conf.tolist(),
    )
    if per_image:
        out["per_image_confusion"] = (torch.stack(per_conf).reshape(-1, k, k).numpy() if per_conf
                                      else np.zeros((0, k, k), np.int64))
    return out


def _all_valid(target: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX) -> bool:
    """Whether every target id is a class (0..K-1) and none is ``ignore_index`` (one min/max pass)."""
    if not target.numel() or target.dtype in (torch.bool, torch.float16, torch.float32, torch.float64):
        return False
    lo, hi = (int(v) for v in torch.aminmax(target))
    return 0 <= lo and hi < num_classes and not lo <= ignore_index <= hi


def _confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
               ignore_index: int = IGNORE_INDEX, all_valid: bool = False) -> torch.Tensor:
    """``confusion_matrix`` in torch (flat K*K counts), with the same checks.

    ``all_valid``: ``_all_valid(target, num_classes, ignore_index)`` holds, so that no pixel is
    dropped and the counts come from one bincount of ``target * K + pred``."""
    pred, target = pred.reshape(-1), target.reshape(-1)
    if pred.shape != target.shape:
        raise ValueError(f"pred has {pred.numel()} pixels, target {target.numel()}; they must match")
    if all_valid:
        return torch.bincount(torch.add(pred.long(), target.long(), alpha=num_classes),
                              minlength=num_classes * num_classes)
    keep = target != ignore_index
    t = target[keep].long()
    bad = (t < 0) | (t >= num_classes)
    if bad.any():
        raise ValueError(f"target holds class ids {torch.unique(t[bad])[:5].tolist()} outside "
                         f"0..{num_classes - 1} (and {ignore_index} = ignore)")
    return torch.bincount(t * num_classes + pred[keep].long(), minlength=num_classes * num_classes)


def main(argv: list[str] | None = None, prog: str = "python -m ocrviz.evaluate") -> int:
    """``python -m ocrviz.evaluate toycity-ocr [toycity-aspp ...] [--images 100] [--device cpu|cuda]``:
    re-evaluate shipped models on the fixed validation split and print a table."""
    import argparse

    from ocrviz.data.dataset import ToyCityDataset, val_split
    from ocrviz.zoo import SHIPPED, load_model

    parser = argparse.ArgumentParser(prog=prog, description=main.__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", metavar="NAME", help=f"shipped model names: {', '.join(SHIPPED)}")
    parser.add_argument("--images", type=int, default=100, help="validation scenes, 1..200 (default 100)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--soft-regions", action="store_true",
                        help="also score OCRNet's soft object regions (its auxiliary head)")
    parser.add_argument("--device", default=None, help="where the forwards run: cpu (default) or cuda")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)                          # no GPU: fails here, before any work
    if args.threads:
        torch.set_num_threads(args.threads)
    models = {name: load_model(name) for name in args.models}     # unknown names fail here, before any work
    data = ToyCityDataset(val_split(args.images))
    print(f"| model | mIoU | pixel acc | ambiguous acc | cue-free acc | {' | '.join(AMBIGUITY_KINDS[1:])} |")
    print("|---|---:|---:|---:|---:|" + "---:|" * (len(AMBIGUITY_KINDS) - 1))
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731  (None: no such pixel in the split)
    runs = [(name, model, False) for name, model in models.items()]
    if args.soft_regions:
        runs += [(f"{name} (soft regions)", m, True) for name, m in models.items() if getattr(m, "arch", "") == "ocrnet"]
    for name, model, aux in runs:
        r = evaluate(model, data, aux=aux, device=device)
        kinds = " | ".join(fmt(r["ambiguous_acc_by_kind"][k]) for k in AMBIGUITY_KINDS[1:])
        print(f"| {name} | {r['miou']:.3f} | {r['pixel_acc']:.3f} | {fmt(r['ambiguous_acc'])} | "
              f"{fmt(r['cue_free_acc'])} | {kinds} |", flush=True)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
