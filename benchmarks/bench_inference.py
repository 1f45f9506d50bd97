"""Inference cost of the three shipped ToyCity models, and the ToyCity generator's speed.

Per model: parameters, GFLOPs of one forward (FlopCounterMode: 2 x
multiply-adds of convs and matmuls) and the median wall time of a forward at
1 x 3 x 256 x 512 (eval, no_grad, CPU), in the default NCHW memory format
and in channels_last (which ``ocrviz.train`` uses; much faster for dilated
convs on CPU).  Models come from ``ocrviz.load_model("toycity-ocr" |
"toycity-aspp" | "toycity-fcn")``; while a checkpoint is missing (training
not finished) the script falls back to ``create_model`` with random weights
and says so in the "weights" column (timing does not depend on the weights).
The generator row reuses ``benchmarks/bench_toycity.py`` (images per
CPU-second on one core) when that script exists.

    .venv/bin/python benchmarks/bench_inference.py [--repeats 10] [--threads N]
    .venv/bin/python benchmarks/bench_inference.py --quick       # 64 x 128, 2 repeats
"""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from types import ModuleType

import torch

from common import count_flops, count_params, fmt_ms, machine_line, md_table, set_threads, time_median_ms
import ocrviz  # noqa: E402  (after common, which puts the repository on sys.path)
from ocrviz.data.toycity import NUM_CLASSES  # noqa: E402

SHIPPED = (("toycity-ocr", "ocrnet"), ("toycity-aspp", "aspp"), ("toycity-fcn", "fcn"))
HERE = Path(__file__).resolve().parent


def get_model(name: str, arch: str) -> tuple[torch.nn.Module, str]:
    """The shipped model, or a random-weight ``create_model(arch)`` while its checkpoint is missing."""
    try:
        return ocrviz.load_model(name), "trained"
    except FileNotFoundError:  # model card or checkpoint not there yet (training not finished)
        return ocrviz.create_model(arch, num_classes=NUM_CLASSES).eval(), "random (no checkpoint yet)"


def toycity_module() -> ModuleType | None:
    """``benchmarks/bench_toycity.py`` imported as a module, or None when it is not there."""
    path = HERE / "bench_toycity.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("bench_toycity", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed forwards per model and format (default 10)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--toycity-seconds", type=float, default=3.0, help="CPU seconds for the generator row")
    parser.add_argument("--quick", action="store_true", help="64 x 128 input, 2 repeats, 0.2 s generator (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.height, args.width, args.repeats, args.toycity_seconds = 64, 128, 2, 0.2
    set_threads(args.threads)

    torch.manual_seed(0)
    x = torch.randn(1, 3, args.height, args.width)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    rows = []
    for name, arch in SHIPPED:
        model, weights = get_model(name, arch)
        with torch.no_grad():
            flops = count_flops(lambda: model(x))                     # doubles as the warm-up forward
            ms = time_median_ms(lambda: model(x), args.repeats, warmup=0)
            model = model.to(memory_format=torch.channels_last)
            ms_cl = time_median_ms(lambda: model(x_cl), args.repeats, warmup=1)
        rows.append([name, arch, weights, f"{count_params(model) / 1e6:.2f}M",
                     f"{flops / 1e9:.2f}", fmt_ms(ms), fmt_ms(ms_cl), f"{1000 / min(ms, ms_cl):.1f}"])

    print("## Inference: shipped ToyCity models\n")
    print(f"Machine: {machine_line()}.  Input 1 x 3 x {args.height} x {args.width}, eval, no_grad; median of "
          f"{args.repeats} forwards after a warm-up.\n")
    print(md_table(["model", "arch", "weights", "params", "GFLOPs", "ms / image (NCHW)", "ms / image (channels_last)",
                    "images / s (best)"], rows, align="lllrrrrr"))

    toycity = toycity_module()
    if toycity is None:
        print("\n(benchmarks/bench_toycity.py not found: no generator row.)")
        return
    rate, cpu_ms, wall_rate, _ = toycity.bench(args.height, args.width, args.toycity_seconds)
    print(f"\nToyCity generator (bench_toycity.bench, this process, numpy on one core): "
          f"{args.height} x {args.width}: {rate:.1f} images / CPU-s ({cpu_ms:.1f} CPU ms / image), "
          f"{wall_rate:.1f} images / wall-s.")


if __name__ == "__main__":
    main()
