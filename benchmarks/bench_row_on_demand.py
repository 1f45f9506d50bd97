"""Self-attention at Cityscapes size: a clicked pixel's HW x HW row computed on demand from the factors.

    .venv/bin/python benchmarks/bench_row_on_demand.py [--height 1024 --width 2048] [--clicks 20] [--threads N]

The toy self-attention model (``create_model("sa")``, non-local head, stride 8) at
1 x 3 x 1024 x 2048 has a 128 x 256 grid: 32,768 cells, so its attention matrix would
be 32,768^2 float32 = 4 GiB.  ocrviz never stores it: capture keeps the query and key
factors (and checks sampled rows against the module's own output), and
``ocrviz.context_maps`` computes one pixel's row when it is asked for.  Prints the
plain forward, the captured forward, the factors' bytes against the full matrix, and
the time per click (median and p90 over ``--clicks`` random pixels, each re-checked
against the module's own context at that cell), and the explorer's kernel answer to such a
click (``widgets.site_rows``: the row as 8-bit codes and its exact class shares).
"""
from __future__ import annotations

import argparse
import random

import torch

from common import fmt_ms, machine_line, md_table, median, p90, set_threads, time_ms  # first: puts the repo on sys.path
import ocrviz  # noqa: E402

GIB = 1024 ** 3


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="64 x 128 input, 3 clicks (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.height, args.width, args.clicks = 64, 128, 3
    set_threads(args.threads)
    torch.manual_seed(0)
    model = ocrviz.create_model("sa", num_classes=19).eval()
    x = torch.randn(1, 3, args.height, args.width)

    def plain() -> None:
        with torch.no_grad():
            model(x)

    plain()
    plain_ms = time_ms(plain)
    holder = {}
    captured_ms = time_ms(lambda: holder.update(cache=ocrviz.run_with_cache(model, x)[1]))
    cache = holder["cache"]
    ((_, site),) = ocrviz.context.find_sites(cache)
    h, w = site.grid
    factor_bytes = sum(cache[n].numel() * cache[n].element_size() for n in cache.names()
                       if n.endswith(("hook_query", "hook_key")))
    full_bytes = (h * w) ** 2 * 4
    rng = random.Random(0)
    pixels = [(rng.randrange(args.height), rng.randrange(args.width)) for _ in range(args.clicks + 1)]
    ocrviz.context_maps(cache, pixels[0])                                        # warm-up
    click_ms = [time_ms(lambda p=p: ocrviz.context_maps(cache, p)) for p in pixels[1:]]
    # the explorer's kernel answer to a click (widgets.site_rows): the same read, its 8-bit row and exact shares
    from ocrviz.widgets.site_rows import SiteRows

    rows = SiteRows()
    rows.keep(0, cache, ocrviz.context.cell_classes(cache), 19)
    cells = [(y * h // args.height) * w + x * w // args.width for y, x in pixels]
    rows.answer({"key": "warm", "head": 0, "site": 0, "row": cells[0]})
    answer_ms = [time_ms(lambda q=q: rows.answer({"key": "k", "head": 0, "site": 0, "row": q})) for q in cells[1:]]
    answer_kib = len(rows.answer({"key": "k", "head": 0, "site": 0, "row": cells[1]})["maps"]["b64"]) / 1024
    print("## Self-attention row on demand\n")
    print(f"Machine: {machine_line()}.  Toy self-attention (non-local) head, random weights, eval, batch 1; "
          f"a click = ``ocrviz.context_maps(cache, (y, x))``: the pixel's softmax row over all {h * w:,} cells "
          f"from the stored query/key, re-checked against the module's own context at that cell.\n")
    print(md_table(["input", "grid", "plain forward ms", "captured forward ms", "query + key MiB",
                    "full HW x HW GiB", "click ms (median)", "click ms (p90)", "kernel answer ms (median)",
                    "answer KiB"],
                   [[f"1x3x{args.height}x{args.width}", f"{h} x {w}", fmt_ms(plain_ms), fmt_ms(captured_ms),
                     f"{factor_bytes / 2**20:.1f}", f"{full_bytes / GIB:.2f}", fmt_ms(median(click_ms)),
                     fmt_ms(p90(click_ms)), fmt_ms(median(answer_ms)), f"{answer_kib:.0f}"]]))
    print("\nkernel answer: what Explorer(site_cells=...) sends for one click when the grid is too large to ship "
          "whole (site_rows.SiteRows.answer: the row read as above, 8-bit codes deflated and base64'd, exact class "
          "shares), before the comm.")


if __name__ == "__main__":
    main()
