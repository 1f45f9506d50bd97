"""Capture overhead: ``ocrviz.run_with_cache`` against a plain forward, side by side.

Per model, after warm-up, plain and captured forwards alternate in one run
(ABBA order: plain-captured, captured-plain, ... so that drift such as a
machine getting busier or cooler hits both equally); the table gives the
median and p90 of each and the ratio of the medians.  Eval mode, no_grad,
CPU, batch 1.  A captured forward is the whole ``run_with_cache`` call:
registering one hook per HookPoint, the forward, storing every tensor
(detached references, no copies) and removing the hooks.  Target: ratio <= 1.02.

    .venv/bin/python benchmarks/bench_capture_overhead.py [--repeats 10] [--threads N]
    .venv/bin/python benchmarks/bench_capture_overhead.py --quick     # 32 x 64 input, 2 repeats

Models: the toy OCRNet (``create_model("ocrnet", num_classes=9)``), the toy
ASPP, self-attention, PSP, DANet and CCNet heads on the same backbone (the
captured forward also attaches what ``ocrviz.context`` needs for their sites
and checks the stored factors against the module's own output), and
HRNetV2-W48 + OCR (``create_model("hrnet_w48_ocr")``, 19 classes), random
weights (timing does not depend on them), input 1 x 3 x 512 x 1024.
"""
from __future__ import annotations

import argparse

import torch

from common import fmt_ms, machine_line, md_table, median, p90, set_threads, time_ms  # first: puts the repo on sys.path
import ocrviz  # noqa: E402

MODELS = (("toy OCRNet", "ocrnet", 9), ("toy ASPP", "aspp", 9), ("toy self-attention", "sa", 9),
          ("toy PSP", "psp", 9), ("toy DANet", "da", 9), ("toy CCNet", "cc", 9),
          ("HRNet-W48-OCR", "hrnet_w48_ocr", 19))
TARGET = 1.02


def measure(model: torch.nn.Module, x: torch.Tensor, repeats: int, warmup: int = 1
            ) -> tuple[list[float], list[float], int]:
    """Alternate plain and captured forwards (ABBA); -> (plain ms, captured ms, tensors captured)."""
    model.eval()
    captured = 0

    def plain() -> None:
        with torch.no_grad():
            model(x)

    def with_cache() -> None:
        nonlocal captured
        _, cache = ocrviz.run_with_cache(model, x)
        captured = len(cache)

    for _ in range(warmup):
        plain()
        with_cache()
    plain_ms: list[float] = []
    captured_ms: list[float] = []
    for i in range(repeats):
        if i % 2 == 0:
            plain_ms.append(time_ms(plain))
            captured_ms.append(time_ms(with_cache))
        else:
            captured_ms.append(time_ms(with_cache))
            plain_ms.append(time_ms(plain))
    return plain_ms, captured_ms, captured


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed forwards of each kind (default 10)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--quick", action="store_true", help="1 x 3 x 32 x 64 input, 2 repeats (smoke test)")
    parser.add_argument("--models", default=None, help="comma-separated labels' create_model names (default: all)")
    args = parser.parse_args(argv)
    if args.quick:
        args.height, args.width, args.repeats = 32, 64, 2
    set_threads(args.threads)

    torch.manual_seed(0)
    x = torch.randn(1, 3, args.height, args.width)
    rows, verdicts = [], []
    wanted = None if args.models is None else set(args.models.split(","))
    for label, name, classes in MODELS:
        if wanted is not None and name not in wanted:
            continue
        model = ocrviz.create_model(name, num_classes=classes).eval()
        plain_ms, cap_ms, n_hooks = measure(model, x, args.repeats)
        ratio = median(cap_ms) / median(plain_ms)
        rows.append([label, f"1x3x{args.height}x{args.width}", fmt_ms(median(plain_ms)), fmt_ms(median(cap_ms)),
                     f"{ratio:.3f}", fmt_ms(p90(plain_ms)), fmt_ms(p90(cap_ms)), n_hooks])
        verdicts.append(f"{label} {'meets' if ratio <= TARGET else 'MISSES'} the target ({ratio:.3f})")
        del model

    print("## Capture overhead: run_with_cache vs plain forward\n")
    print(f"Machine: {machine_line()}.  Eval, no_grad, batch 1, random weights; {args.repeats} forwards of "
          f"each kind alternating in ABBA order after 1 warm-up pair; ratio = median captured / median "
          f"plain (target <= {TARGET}).\n")
    print(md_table(["model", "input", "plain ms (median)", "captured ms (median)", "ratio", "plain ms (p90)",
                    "captured ms (p90)", "hooks captured"], rows))
    print("\n" + "; ".join(verdicts) + ".")


if __name__ == "__main__":
    main()
