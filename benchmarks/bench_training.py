"""The shipped ToyCity models side by side, from their model cards.

Prints mIoU, accuracy on the designed-ambiguous pixels (all, per kind, and
the cue-free ones that no 111 px receptive field can decide), parameters, CPU time
per image (measured by the training run's final evaluation) and training
wall time, plus each run's validation curve (mIoU against wall time), which
is the "training wall time to target" record.

    python benchmarks/bench_training.py
"""
from __future__ import annotations

import argparse

from ocrviz.train import training_stages
from ocrviz.zoo import HEAD_MODELS, SHIPPED, data_dir, model_card


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _curve(card: dict) -> list[tuple[int, float, float]]:
    """(cumulative step, val mIoU, cumulative wall seconds) over the card's
    whole training chain: each stage's periodic validations, then its end."""
    points, steps0, wall0 = [], 0, 0.0
    for stage in training_stages(card):
        points += [(steps0 + h["step"], h["val_miou"], wall0 + h["wall_s"]) for h in stage.get("history", [])]
        steps0 += stage["steps"]
        wall0 += stage["wall_time_s"]
        points.append((steps0, stage["metrics"]["miou"], wall0))
    return points


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    cards = {name: model_card(name) for name in SHIPPED}
    some = next(iter(cards.values()))
    split = some["val_split"]
    print(f"### Shipped models on ToyCity validation ({split['n_images']} scenes, "
          f"{split['height']}x{split['width']}, seeds never used in training)\n")
    print("| model | mIoU | ambiguous acc | cue-free acc | pixel acc | params | CPU ms / image | "
          "train steps | train wall time |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, c in cards.items():
        m = c["metrics"]
        print(f"| {name} | {m['miou']:.3f} | {m['ambiguous_acc']:.3f} | {_fmt(m.get('cue_free_acc'))} | "
              f"{m['pixel_acc']:.3f} | {c['params'] / 1e6:.2f}M | {1000 * m['seconds_per_image']:.0f} | "
              f"{c.get('total_steps', c['steps'])} | {c.get('total_wall_time_s', c['wall_time_s']) / 60:.1f} min |")
    kinds = list(some["metrics"].get("ambiguous_acc_by_kind", {}))
    if kinds:
        pixels = some["metrics"]["cue_free_pixels"]
        print(f"\n### Accuracy per designed ambiguity (cue-free: {pixels:,} pixels with nothing but "
              "their own ambiguous surface within 77 px)\n")
        print("| model | " + " | ".join(kinds) + " | cue-free |")
        print("|---|" + "---:|" * (len(kinds) + 1))
        for name, c in cards.items():
            m = c["metrics"]
            print(f"| {name} | " + " | ".join(_fmt(m["ambiguous_acc_by_kind"][k]) for k in kinds)
                  + f" | {_fmt(m['cue_free_acc'])} |")
    print("\n### Per-class IoU\n")
    classes = some["class_names"]
    print("| model | " + " | ".join(classes) + " |")
    print("|---|" + "---:|" * len(classes))
    for name, c in cards.items():
        iou = c["metrics"]["per_class_iou"]
        print(f"| {name} | " + " | ".join("-" if iou[k] is None else f"{iou[k]:.2f}" for k in classes) + " |")
    print("\n### Validation mIoU during training (on the first 20 validation scenes; "
          "a stage's end: on all validation scenes)\n")
    curves = {name: _curve(c) for name, c in cards.items()}
    steps = [step for step, _, _ in curves[next(iter(curves))]]
    print("| model | " + " | ".join(f"step {s}" for s in steps) + " |")
    print("|---|" + "---:|" * len(steps))
    for name, curve in curves.items():
        print(f"| {name} | " + " | ".join(f"{miou:.3f} ({wall / 60:.0f} min)" for _, miou, wall in curve) + " |")
    print("\nTrained with: " + ", then ".join(f"`{stage['command']}`" for stage in training_stages(some)) + " (arch and paths differ per model); "
          f"machine: {some['machine']['processor']}, {some['machine']['cpu_count']} CPUs, torch {some['machine']['torch']}.")
    heads_table()


def heads_table() -> None:
    """The heads trained by ``ocrviz.train_heads`` on toycity-fcn's frozen backbone (`make heads`)."""
    cards = {n: model_card(n) for n in HEAD_MODELS if (data_dir() / "checkpoints" / f"{n}.json").exists()}
    if not cards:
        return
    some = next(iter(cards.values()))
    print(f"\n### Context heads on toycity-fcn's frozen backbone, everything else equal ({len(cards)} of "
          f"{len(HEAD_MODELS)} in ocrviz.zoo.HEAD_MODELS)\n")
    print("| model | arch | mIoU | ambiguous acc | cue-free acc | pixel acc | head params | CPU ms / image | "
          "steps x batch | head training | load avg (1 min) start / end |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, c in cards.items():
        m, cfg, load = c["metrics"], c["config"], c["load_average"]
        print(f"| {name} | {c['arch']} | {m['miou']:.3f} | {m['ambiguous_acc']:.3f} | {_fmt(m['cue_free_acc'])} | "
              f"{m['pixel_acc']:.3f} | {c['head_params'] / 1e3:.0f}k | {1000 * m['seconds_per_image']:.0f} | "
              f"{cfg['steps']} x {cfg['batch_size']} | {c['wall_time_s'] / 60:.1f} min | "
              f"{load['start'][0]:.1f} / {load['end'][0]:.1f} |")
    feats = some["features"]
    print(f"\nEach: `{some['command']}` (arch and out differ); backbone features of {feats['scenes']} training "
          f"scenes computed once ({feats['wall_time_s'] / 60:.1f} min, float16, cached); only the head trains; "
          f"evaluated on the same {some['val_split']['n_images']} validation scenes as the table above. "
          f"Machine: {some['machine']['processor']}, {some['machine']['cpu_count']} CPUs shared with other jobs "
          f"(the load average is os.getloadavg() at the start and end of the training loop), one thread, "
          f"torch {some['machine']['torch']}.")


if __name__ == "__main__":
    main()
