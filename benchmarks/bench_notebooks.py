"""Course notebooks: wall time of each one, run headless top to bottom, at the course's threads.

    .venv/bin/python benchmarks/bench_notebooks.py                    # all five; 03 also on torch's default threads
    .venv/bin/python benchmarks/bench_notebooks.py --only 03          # one notebook
    .venv/bin/python benchmarks/bench_notebooks.py --default-too 03 05 --repeats 2

Each notebook runs as the notebook test runs it: a copy in a temporary folder
(its working directory, removed afterwards), a fresh ``python3`` kernel
(nbclient) importing this checkout, the shipped checkpoints, and the thread
variables of ``ocrviz.tools.course_env`` (``OMP_NUM_THREADS`` =
``COURSE_THREADS`` unless ``--threads`` says otherwise).  The notebooks named
by ``--default-too`` (03 by default) are also run with the thread variables
removed, torch's default, side by side: the measurement behind
``COURSE_THREADS``.  Time = kernel start excluded, first cell to last cell;
the median of ``--repeats`` runs.  The 1-minute load average before each run
is reported: on a shared machine it explains most of the spread.

Prints its section of benchmarks/RESULTS.md (``benchmarks/run_all.py``
collects it).  ``--quick`` runs notebook 01 only, once (a smoke test).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, md_table, median

sys.path.insert(0, str(REPO))
from ocrviz.tools.course_env import COURSE_THREADS, course_env  # noqa: E402

NOTEBOOKS = REPO / "notebooks"
BUDGET_S = 60.0                     # issue 9: each notebook <= 60 s on 2 cores


def run_notebook(path: Path, threads: int) -> tuple[float, float]:
    """-> (seconds, 1-minute load average before the run) for one headless run; ``threads=0``: torch default."""
    import nbformat
    from nbclient import NotebookClient

    env = course_env(threads=threads)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("OCRVIZ_DATA", str(REPO / "data"))
    env.pop("OCRVIZ_HRNET_CKPT", None)
    with tempfile.TemporaryDirectory(prefix="ocrviz_bench_nb_") as work:
        shutil.copy(path, work)
        nb = nbformat.read(Path(work) / path.name, as_version=4)
        client = NotebookClient(nb, timeout=600, startup_timeout=120, kernel_name="python3",
                                resources={"metadata": {"path": work}})
        load = os.getloadavg()[0]
        with client.setup_kernel(env=env):
            t0 = time.perf_counter()
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)          # raises CellExecutionError on an error
            seconds = time.perf_counter() - t0
    return seconds, load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", default=None, metavar="NN", help="notebook numbers, e.g. 03 05")
    ap.add_argument("--threads", type=int, default=COURSE_THREADS,
                    help=f"OMP/MKL threads of the kernel (default COURSE_THREADS = {COURSE_THREADS})")
    ap.add_argument("--default-too", nargs="*", default=["03"], metavar="NN",
                    help="also run these on torch's default threads (default: 03)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="notebook 01 only, once (smoke test)")
    args = ap.parse_args()
    if args.threads < 1:
        ap.error("--threads must be >= 1 (the default-thread runs are --default-too)")
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    only = ["01"] if args.quick else args.only
    if only:
        paths = [p for p in paths if p.name[:2] in only]
    if not paths:
        raise SystemExit(f"no notebook matches {only}")
    repeats = 1 if args.quick else max(1, args.repeats)
    default_too = set() if args.quick else set(args.default_too or [])

    import torch  # noqa: F401  (only for the default thread count in the machine line)

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    rows, over = [], []
    for path in paths:
        chosen = [run_notebook(path, args.threads) for _ in range(repeats)]
        t = median([s for s, _ in chosen])
        row = [path.stem, f"{t:.1f}", f"{max(l for _, l in chosen):.2f}"]
        if path.name[:2] in default_too:
            dflt = [run_notebook(path, 0) for _ in range(repeats)]
            td = median([s for s, _ in dflt])
            row += [f"{td:.1f}", f"{max(l for _, l in dflt):.2f}", f"{td / t:.2f}x"]
        else:
            row += ["", "", ""]
        rows.append(row)
        if t > BUDGET_S:
            over.append(path.stem)
        print(f"  {path.stem}: {' / '.join(c for c in row[1:] if c)}", file=sys.stderr, flush=True)

    print("### Course notebooks: headless run time\n")
    print(f"Machine: {os.cpu_count()} logical CPUs ({usable} usable), torch {torch.__version__} "
          f"(default {torch.get_num_threads()} intra-op threads in this process).  Each notebook top to bottom in "
          f"a fresh kernel (nbclient, kernel start excluded), median of {repeats} run(s); "
          f"**{args.threads} thread(s)** = the course's setting (`ocrviz.tools.course_env.COURSE_THREADS` = "
          f"{COURSE_THREADS}, what `make lab` and the notebook tests use); *default* = no thread variables "
          f"(torch's default).  Load = 1-minute load average before the run.\n")
    print(md_table(["notebook", f"s @ {args.threads} thread(s)", "load", "s @ torch default", "load",
                    "default / chosen"], rows))
    print()
    print(f"Budget {BUDGET_S:.0f} s per notebook: " + (f"OVER for {', '.join(over)}." if over else "all within."))


if __name__ == "__main__":
    main()
