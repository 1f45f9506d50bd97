"""Train a context head on a frozen, shipped ToyCity backbone: every head, everything else equal.

    python -m ocrviz.train_heads --arch sa --out data/checkpoints/toycity-sa

Training a whole ToyCity model takes about 100 min alone on 2 CPU cores
(``ocrviz.train``); half of every step is the backbone.  Here the backbone is
the shipped FCN's (``data/checkpoints/toycity-fcn.safetensors``), frozen:

1. ``--scenes`` training scenes (seeds from ``TRAIN_SEEDS``, never validation's)
   are rendered and run through the frozen backbone ONCE; the B x 128 x 32 x 64
   features are kept as float16 (0.5 MiB per scene) with the uint8 labels, in
   memory and in a cache file under ``--cache-dir`` that the next head's run
   reuses (keyed by the backbone file's SHA-256, the seeds and the size).
2. Only the head trains: AdamW, poly schedule, cross-entropy on the main
   logits upsampled to 256 x 512 as in ``ocrviz.train`` (align_corners=True),
   plus the head's own auxiliary losses (OCR's soft regions x 0.4; DANet's PAM
   and CAM classifiers x 1 each, as MMSegmentation).  No augmentation: the
   features are fixed.
3. The backbone and the trained head become one ordinary ``SegModel``
   (``create_model(arch, dilated=False)``), evaluated with
   :func:`ocrviz.evaluate.evaluate` on the same 100 validation scenes as the
   shipped cards, and saved with a model card.

Why the FCN backbone: it was trained with a head that has no context module,
so its features favour no context head (OCR's or ASPP's backbone co-adapted
with that head), and, with ``dilated=False``, a cell's features see 111 px
only: ToyCity's cue-free ambiguous pixels (no cue within that field) can only
be resolved by the head's context, which is what the comparison measures.
Measured with this recipe (200 x 4 steps, 400 scenes), the alternative, the
backbone of toycity-ocr, gave the OCR head 0.793 mIoU / 0.960 cue-free
accuracy (0.798 / 0.961 on FCN's) and the self-attention head 0.719 / 0.960
(0.763 / 0.929 on FCN's): differences of up to 0.04, in no consistent
direction, so neutrality decides.

Quality (benchmarks/RESULTS.md, the cards): at 200 steps x 4 every head is
under-trained on the thin classes (traffic sign, person), which dominate
the mIoU spread (0.73-0.80); the cue-free accuracy (0.93-1.00 for the context
heads, 0.765 for the FCN head trained the same way) is the context measure.
A head takes 2-7 min on one thread of the shared 2-core machine, the
features of 400 scenes 1.4 min once.

Example from a notebook::

    from ocrviz.train_heads import HeadTrainConfig, train_head
    result = train_head(HeadTrainConfig(arch="psp", steps=50, scenes=32, out=None))
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoints import load_checkpoint, save_checkpoint
from .cli_checks import require_positive
from .data.dataset import TRAIN_SEEDS, ToyCityDataset, normalize, val_split
from .data.toycity import CLASSES, PALETTE
from .evaluate import IGNORE_INDEX, evaluate, numpy_blas_threads
from .models import create_model
from .models.danet import DAHead
from .train import TrainResult, _machine, poly_lr

ARCHS = ("sa", "psp", "da", "cc", "ocrnet", "aspp", "fcn")
CHECK_IMAGES = 8            # the card's re-evaluation subset: the first val scenes, with their confusion


@dataclass(frozen=True)
class HeadTrainConfig:
    """Everything that decides a head-training run (recorded in the model card)."""

    arch: str = "sa"
    backbone: str = "data/checkpoints/toycity-fcn.safetensors"
    scenes: int = 400
    scene_offset: int = 0
    steps: int = 200
    batch_size: int = 4
    lr: float = 2e-3
    weight_decay: float = 1e-4
    aux_weight: float = 0.4
    height: int = 256
    width: int = 512
    seed: int = 0
    val_images: int = 100
    val_every: int = 100
    threads: int = 1
    cache_dir: str = "build/head-features"
    out: str | None = None

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch={self.arch!r} is not trainable here; choose one of {ARCHS}")
        require_positive(self, ("scenes", "steps", "batch_size", "height", "width", "val_images", "val_every",
                                "threads"))
        if self.scene_offset < 0 or self.scene_offset + self.scenes > len(TRAIN_SEEDS):
            raise ValueError(f"scenes {self.scene_offset}..{self.scene_offset + self.scenes} must lie in "
                             f"TRAIN_SEEDS (0..{len(TRAIN_SEEDS)})")
        if self.batch_size < 2:
            raise ValueError(f"batch_size={self.batch_size}: the heads' BatchNorm (PSP's 1 x 1 level, ASPP's "
                             "pooling branch) needs at least 2")
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr} must be > 0")


HeadTrainResult = TrainResult   # the trained model (eval mode), its card, the checkpoint path (or None), the losses


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_backbone(path: str | os.PathLike) -> tuple[torch.nn.Module, dict]:
    """The ``backbone`` of a shipped ToyCity checkpoint (eval mode, frozen) and that file's card."""
    from .checkpoints import checkpoint_metadata

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"backbone checkpoint {str(path)!r} does not exist; give a ToyCity "
                                "checkpoint such as data/checkpoints/toycity-fcn.safetensors")
    card = checkpoint_metadata(path).get("model_card") or {}
    model = create_model(card.get("arch", "fcn"), num_classes=len(CLASSES), **card.get("model_kwargs", {}))
    load_checkpoint(model, path)
    backbone = model.backbone.eval()
    for p in backbone.parameters():
        p.requires_grad_(False)
    return backbone, card


@torch.no_grad()
def backbone_features(config: HeadTrainConfig, backbone: torch.nn.Module, backbone_sha: str,
                      progress: bool = True) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(features N x Cf x h x w float16, labels N x H x W uint8, info) for the config's training scenes.

    Loaded from ``cache_dir`` when a file for the same backbone, seeds and size exists."""
    seeds = TRAIN_SEEDS[config.scene_offset:config.scene_offset + config.scenes]
    key = f"{backbone_sha[:16]}-{seeds.start}-{seeds.stop}-{config.height}x{config.width}"
    path = Path(config.cache_dir) / f"features-{key}.pt"
    if path.exists():
        blob = torch.load(path, weights_only=True)
        return blob["features"], blob["labels"], {**blob["info"], "cache": str(path), "from_cache": True}
    ds = ToyCityDataset(seeds, height=config.height, width=config.width, cue_free=False)
    feats, labels = [], []
    t0 = time.perf_counter()
    chunk = 8
    with numpy_blas_threads(1):
        for lo in range(0, len(ds), chunk):
            rows = [ds.render(i) for i in range(lo, min(lo + chunk, len(ds)))]
            images = normalize(np.stack([r["image"] for r in rows]))        # n x 3 x H x W
            feats.append(backbone(images).half())                           # n x Cf x h x w
            labels.append(torch.from_numpy(np.stack([r["labels"] for r in rows])).to(torch.uint8))  # n x H x W
            if progress and (lo // chunk) % 25 == 0:
                print(f"features {lo + len(rows)}/{len(ds)} ({time.perf_counter() - t0:.0f} s)", flush=True)
    features, label_maps = torch.cat(feats), torch.cat(labels)
    info = {"scenes": len(ds), "seeds": [seeds.start, seeds.stop], "dtype": "float16",
            "shape": list(features.shape), "wall_time_s": round(time.perf_counter() - t0, 1),
            "load_average": [round(v, 2) for v in os.getloadavg()]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save({"features": features, "labels": label_maps, "info": info}, tmp)
    os.replace(tmp, path)
    return features, label_maps, {**info, "cache": str(path), "from_cache": False}


def head_loss(head: torch.nn.Module, feats: torch.Tensor, labels: torch.Tensor, aux_weight: float) -> torch.Tensor:
    """The head's training loss on features, at label resolution (as ``ocrviz.train``)."""
    size = labels.shape[-2:]

    def ce(logits: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(logits, size=size, mode="bilinear", align_corners=True)   # B x K x H x W
        return F.cross_entropy(up, labels, ignore_index=IGNORE_INDEX)

    if isinstance(head, DAHead):        # MMSeg DAHead: fused, PAM-only and CAM-only, weight 1 each
        main, pam, cam = head.branch_logits(feats)
        return ce(main) + ce(pam) + ce(cam)
    aux, main = head(feats)
    loss = ce(main)
    if aux is not None:
        loss = loss + aux_weight * ce(aux)
    return loss


def _subset_check(model: torch.nn.Module, config: HeadTrainConfig) -> dict:
    rep = evaluate(model, ToyCityDataset(val_split(CHECK_IMAGES), height=config.height, width=config.width),
                   len(CLASSES), list(CLASSES))
    return {"n_images": CHECK_IMAGES, "miou": rep["miou"], "pixel_acc": rep["pixel_acc"],
            "confusion": rep["confusion"]}


def train_head(config: HeadTrainConfig, *, progress: bool = True, command: str | None = None) -> HeadTrainResult:
    """Train one head on the frozen backbone; returns the whole model (eval mode) with its card."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    load_start = [round(v, 2) for v in os.getloadavg()]
    backbone_path = Path(config.backbone)
    backbone, backbone_card = load_backbone(backbone_path)
    sha = _sha256(backbone_path)
    features, labels, feature_info = backbone_features(config, backbone, sha, progress)

    model = create_model(config.arch, num_classes=len(CLASSES), dilated=False)
    model.class_names, model.palette = list(CLASSES), [tuple(map(int, c)) for c in PALETTE]
    model.backbone.load_state_dict(backbone.state_dict())
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    head = model.head
    opt = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(len(features), generator=gen)
    val_small = ToyCityDataset(val_split(min(20, config.val_images)), height=config.height, width=config.width)

    history: list[dict] = []
    losses: list[float] = []
    head.train()
    model.backbone.eval()
    t_start = time.perf_counter()
    cursor = 0
    for step in range(config.steps):
        if cursor + config.batch_size > len(order):       # a new epoch: a fresh permutation
            order, cursor = torch.randperm(len(features), generator=gen), 0
        idx = order[cursor:cursor + config.batch_size]
        cursor += config.batch_size
        for g in opt.param_groups:
            g["lr"] = poly_lr(config.lr, step, config.steps)
        loss = head_loss(head, features[idx].float(), labels[idx].long(), config.aux_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if progress and (step + 1) % 50 == 0:
            el = time.perf_counter() - t_start
            print(f"step {step + 1}/{config.steps} loss {np.mean(losses[-50:]):.3f} ({el:.0f} s, "
                  f"{el / (step + 1):.3f} s/step)", flush=True)
        if (step + 1) % config.val_every == 0 and step + 1 < config.steps:
            rep = evaluate(model, val_small, len(CLASSES), list(CLASSES))
            history.append({"step": step + 1, "loss": round(float(np.mean(losses[-50:])), 4),
                            "val_miou": round(rep["miou"], 4), "wall_s": round(time.perf_counter() - t_start, 1)})
            if progress:
                print(f"step {step + 1}: val mIoU {rep['miou']:.3f} (on {len(val_small)} images)", flush=True)
            head.train()
            model.backbone.eval()
    wall = time.perf_counter() - t_start
    load_end = [round(v, 2) for v in os.getloadavg()]
    model.eval()
    t_eval = time.perf_counter()
    report = evaluate(model, ToyCityDataset(val_split(config.val_images), height=config.height,
                                            width=config.width), len(CLASSES), list(CLASSES))
    eval_wall = time.perf_counter() - t_eval
    name = Path(config.out).name if config.out else None
    card = {
        "name": name,
        "arch": config.arch,
        "num_classes": len(CLASSES),
        "class_names": list(CLASSES),
        "palette": [list(map(int, c)) for c in PALETTE],
        "model_kwargs": {"dilated": False},
        "params": sum(p.numel() for p in model.parameters()),
        "head_params": sum(p.numel() for p in head.parameters()),
        "config": dataclasses.asdict(config),
        "command": command or "python -m ocrviz.train_heads " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "recipe": "frozen backbone, features computed once (ocrviz.train_heads)",
        "seed": config.seed,
        "steps": config.steps,
        "total_steps": config.steps,
        "wall_time_s": round(wall, 1),
        "features_wall_time_s": feature_info["wall_time_s"],
        "eval_wall_time_s": round(eval_wall, 1),
        "total_wall_time_s": round(wall + feature_info["wall_time_s"] + eval_wall, 1),
        "load_average": {"start": load_start, "end": load_end,
                         "note": "os.getloadavg() (1, 5, 15 min) on a 2-core machine shared with other jobs"},
        "backbone": {"path": str(config.backbone), "sha256": sha, "frozen": True,
                     "name": backbone_card.get("name"), "arch": backbone_card.get("arch"),
                     "total_steps": backbone_card.get("total_steps"),
                     "total_wall_time_s": backbone_card.get("total_wall_time_s")},
        "features": feature_info,
        "init_from": None,
        "machine": _machine(),
        "val_split": {"generator": "ocrviz.data.dataset.val_split", "n_images": config.val_images,
                      "height": config.height, "width": config.width},
        "metrics": {k: report[k] for k in ("miou", "pixel_acc", "ambiguous_acc", "ambiguous_acc_by_kind",
                                           "cue_free_acc", "cue_free_pixels", "per_class_iou",
                                           "seconds_per_image")},
        "check_subset": _subset_check(model, config),
        "history": history,
    }
    ckpt = None
    if config.out:
        ckpt = Path(config.out).with_suffix(".safetensors")
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(model, ckpt, metadata={"model_card": card})
        Path(config.out).with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    return HeadTrainResult(model=model, card=card, checkpoint=ckpt, losses=losses)


def _parse(argv: Sequence[str] | None, prog: str) -> HeadTrainConfig:
    from .cli_checks import dataclass_parser

    return HeadTrainConfig(**vars(dataclass_parser(HeadTrainConfig, prog, __doc__.split("\n\n")[0]).parse_args(argv)))


def main(argv: Sequence[str] | None = None, prog: str = "python -m ocrviz.train_heads") -> int:
    """The command line: parse, train, print a JSON summary."""
    config = _parse(argv, prog)
    args = list(sys.argv[1:] if argv is None else argv)
    result = train_head(config, command=f"{prog} " + " ".join(shlex.quote(a) for a in args))
    m: Any = result.card["metrics"]
    print(json.dumps({"miou": m["miou"], "ambiguous_acc": m["ambiguous_acc"], "cue_free_acc": m["cue_free_acc"],
                      "wall_time_s": result.card["wall_time_s"], "checkpoint": str(result.checkpoint)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
