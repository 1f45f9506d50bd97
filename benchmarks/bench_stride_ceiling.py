"""How much mIoU can an output stride allow on ToyCity?  Prints a markdown table.

A "share oracle" knows the true class shares of every s x s cell of the
validation scenes (the mean one-hot label over the cell) and upsamples them
to pixels exactly as the shipped models upsample their logits (bilinear,
``align_corners=True``), then takes the argmax.  It is not a strict upper
bound (a trained model may sharpen its logits in ways shares do not), but it
shows what the cell grid costs the thin classes (poles, signs, persons), and
so how far the 0.85 mIoU target is from what stride 8 allows.

    .venv/bin/python benchmarks/bench_stride_ceiling.py [--images 100] [--quick]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from ocrviz.data.dataset import val_split
from ocrviz.data.toycity import CLASSES, NUM_CLASSES, make_scene
from ocrviz.evaluate import confusion_matrix, metrics_from_confusion
from ocrviz.zoo import SHIPPED, model_card


def share_oracle(labels: np.ndarray, stride: int) -> np.ndarray:
    """H x W labels -> H x W argmax of the upsampled s x s cell class shares."""
    lab = torch.from_numpy(labels)
    onehot = F.one_hot(lab, NUM_CLASSES).permute(2, 0, 1).float()[None]      # 1 x K x H x W
    cells = F.avg_pool2d(onehot, stride)                                     # 1 x K x H/s x W/s
    up = F.interpolate(cells, size=labels.shape, mode="bilinear", align_corners=True)
    return up.argmax(1)[0].numpy()                                           # H x W


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="10 images")
    args = parser.parse_args()
    n = 10 if args.quick else args.images
    torch.set_num_threads(1)
    rows = []
    for stride in (16, 8, 4, 2):
        conf = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
        for seed in val_split(n):
            s = make_scene(seed)
            conf += confusion_matrix(share_oracle(s.labels, stride), s.labels, NUM_CLASSES)
        rows.append((f"share oracle, stride {stride}", metrics_from_confusion(conf, CLASSES)))
    for name in SHIPPED:
        rows.append((f"{name} (stride 8, trained)", model_card(name)["metrics"]))
    thin = ("pole", "traffic sign", "person")
    print(f"### mIoU ceiling of the cell grid ({n} validation scenes, 256x512)\n")
    print("| | mIoU | " + " | ".join(thin) + " | road | car |")
    print("|---|---:|" + "---:|" * (len(thin) + 2))
    for label, m in rows:
        iou = m["per_class_iou"]
        print(f"| {label} | {m['miou']:.3f} | " + " | ".join(f"{iou[c]:.2f}" for c in (*thin, "road", "car")) + " |")
    print("\nThe trained rows come from the model cards (100 scenes).")


if __name__ == "__main__":
    main()
