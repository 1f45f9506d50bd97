"""The thread count the course runs with, set in this one place.

``make lab`` starts JupyterLab through this module, the notebook tests start
their kernels with :func:`course_env`, and ``benchmarks/bench_notebooks.py``
times the notebooks with it, so a student, the tests and the benchmark all
run the notebooks the same way::

    python -m ocrviz.tools.course_env jupyter lab --notebook-dir=notebooks

Why one thread.  The notebooks run small models on small images (256 x 512,
a 32 x 64 feature grid): each operation is too short for torch's intra-op
thread pool to pay for itself, and as soon as anything else runs on the
machine (a browser, another kernel, a classmate's job on a shared server)
every extra thread mostly waits.  Measured on a 2-core machine (issue 9 and
``benchmarks/bench_notebooks.py``, see benchmarks/RESULTS.md):

* busy machine: notebook 03 took 45 s on torch's default threads and 9 s on
  one; notebook 05 59 s and 11 s;
* quiet machine: notebook 03 took 10.4 s on the default threads and 8.5 s
  on one;
* this repository's 2-core machine, shared (``bench_notebooks.py --only 03``,
  load average 0.2 before each run): 6.9 s on one thread, 32.7 s on torch's
  default (2 threads).

One thread is never slower here and is up to five times faster under load,
so that is the course's setting.  A caller that already set
``OMP_NUM_THREADS`` keeps its own value (to measure another setting, or on a
big idle machine with a large model such as HRNet-W48).
"""
from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence

COURSE_THREADS = 1
# Every variable a thread pool under torch / numpy reads at start-up.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def course_env(base: Mapping[str, str] | None = None, threads: int | None = None) -> dict[str, str]:
    """A copy of ``base`` (default ``os.environ``) with the course's thread settings.

    ``threads=None``: ``OMP_NUM_THREADS`` from ``base`` when it is set, else
    :data:`COURSE_THREADS`; the other pools follow ``OMP_NUM_THREADS``.  An
    explicit ``threads`` overrides ``base``; ``threads=0`` removes the
    variables (torch's default threads, for comparison).
    """
    env = dict(os.environ if base is None else base)
    if threads == 0:
        for var in THREAD_VARS:
            env.pop(var, None)
        return env
    if threads is None:
        n = env.get("OMP_NUM_THREADS") or str(COURSE_THREADS)
    else:
        if threads < 0:
            raise ValueError(f"threads must be >= 0, got {threads}")
        n = str(threads)
    for var in THREAD_VARS:
        env[var] = n
    return env


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ocrviz.tools.course_env CMD [ARGS...]``: run CMD with the course's threads."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__.split("\n\n")[0] + "\n\nusage: python -m ocrviz.tools.course_env CMD [ARGS...]"
              f"  (runs CMD with OMP_NUM_THREADS={COURSE_THREADS} unless already set)")
        return 0 if args else 2
    exe = shutil.which(args[0])
    if exe is None:
        print(f"course_env: command not found: {args[0]}", file=sys.stderr)
        return 127
    os.execve(exe, args, course_env())      # replaces this process: signals reach CMD directly
    return 0                                # not reached


if __name__ == "__main__":
    sys.exit(main())
