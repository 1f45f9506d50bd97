"""region_influence per image and attention_report images per second, shipped toycity-ocr.

    .venv/bin/python benchmarks/bench_influence.py [--repeats 5] [--images 8] [--threads N]
    .venv/bin/python benchmarks/bench_influence.py --quick     # 64 x 128 scenes, 1 repeat, 2 images

``region_influence``: every cell x K of one 256 x 512 ToyCity scene (32 x 64 cells, K = 9),
from a cache captured once; median of ``--repeats`` after one warm-up.  Target: <= 1 s on 2 cores.
``attention_report``: ``--images`` fresh scenes (rendered beforehand, not timed), whole call
(forward + three counterfactual re-runs + metrics per image), no progress bar.
"""
from __future__ import annotations

import argparse
import time

from common import fmt_ms, machine_line, md_table, median, set_threads, time_ms  # first: puts the repo on sys.path
import ocrviz  # noqa: E402
from ocrviz.analysis import attention_report, region_influence  # noqa: E402
from ocrviz.data.dataset import normalize  # noqa: E402
from ocrviz.data.toycity import make_scene  # noqa: E402

TARGET_MS = 1000.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=8, help="scenes for attention_report (default 8)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="64 x 128 scenes, 1 repeat, 2 images (smoke test)")
    args = parser.parse_args(argv)
    height, width = (64, 128) if args.quick else (256, 512)
    if args.quick:
        args.repeats, args.images = 1, 2
    set_threads(args.threads)
    model = ocrviz.load_model("toycity-ocr")
    scene = make_scene(0, height, width)
    _, cache = ocrviz.run_with_cache(model, normalize(scene.image)[None])
    h, w = cache.feature_size
    region_influence(model, cache)                                        # warm-up
    times = [time_ms(lambda: region_influence(model, cache)) for _ in range(max(1, args.repeats))]
    scenes = [make_scene(1000 + i, height, width) for i in range(args.images)]
    t0 = time.perf_counter()
    attention_report(model, [s.image for s in scenes], [s.labels for s in scenes], progress=False)
    seconds = time.perf_counter() - t0
    print(machine_line() + "\n")
    k = model.num_classes
    print(md_table(["measure", "value", "target"], [
        [f"region_influence, {h} x {w} cells x K = {k} ({height} x {width}), median ms", fmt_ms(median(times)),
         f"<= {TARGET_MS:.0f}"],
        [f"attention_report, {args.images} images {height} x {width}, images/s", f"{args.images / seconds:.2f}", "-"],
    ]))


if __name__ == "__main__":
    main()
