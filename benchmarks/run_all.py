"""Run every ``bench_*.py`` in this folder and collect their tables in one markdown file.

Each script runs as its own subprocess (so one script's threads, imports and
memory cannot skew the next), in name order, from the repository root.  Its
stdout (markdown tables) is copied into the results file under a heading
with its wall time; a script that fails gets its exit code and the end of its
stderr instead, and run_all exits with status 1.

    .venv/bin/python benchmarks/run_all.py                  # -> benchmarks/RESULTS.md
    .venv/bin/python benchmarks/run_all.py --quick          # -> benchmarks/RESULTS-quick.md (smoke test)
    .venv/bin/python benchmarks/run_all.py --only context inference --threads 2

``--quick`` passes ``--quick`` to scripts that take it (``bench_toycity.py``
gets ``--seconds 0.3`` instead); a script with neither runs in full.
``--threads N`` is passed to scripts that take ``--threads``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# Scripts whose quick mode is spelled differently.
QUICK_ARGS = {"bench_toycity.py": ["--seconds", "0.3"]}


def script_args(path: Path, quick: bool, threads: int | None) -> tuple[list[str], str]:
    """Command-line arguments for one script, and a note for the results file ('' when none)."""
    source = path.read_text(encoding="utf-8")
    args: list[str] = []
    note = ""
    if quick:
        if path.name in QUICK_ARGS:
            args += QUICK_ARGS[path.name]
        elif '"--quick"' in source:
            args.append("--quick")
        else:
            note = "no --quick option: ran in full"
    if threads is not None:
        if '"--threads"' in source:
            args += ["--threads", str(threads)]
        else:
            note = "; ".join(filter(None, [note, "no --threads option: its own thread setting"]))
    return args, note


def header(quick: bool, threads: int | None) -> str:
    import torch  # only for its version and default thread count

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    lines = [
        "# ocrviz benchmark results" + (" (QUICK MODE: tiny sizes, smoke test only, not results)" if quick else ""),
        "",
        f"- date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs "
        f"({usable} usable), {platform.system()} {platform.release()}",
        f"- python {platform.python_version()}, torch {torch.__version__}",
        f"- threads: {threads if threads is not None else f'each script default (torch: {torch.get_num_threads()})'}",
        f"- commit: {commit} (uncommitted changes are not recorded)",
        f"- command: `{' '.join([Path(sys.executable).name, *sys.argv])}`",
        "",
    ]
    return "\n".join(lines)


def run_script(path: Path, args: list[str], timeout: float) -> tuple[int, str, str, float]:
    """-> (exit code, stdout, stderr, wall seconds); exit code 124 on timeout."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(path), *args], cwd=REPO, capture_output=True,
                              text=True, timeout=timeout)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        def text(b: bytes | str | None) -> str:
            return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")
        code, out, err = 124, text(exc.stdout), text(exc.stderr) + f"\ntimed out after {timeout:.0f} s"
    return code, out, err, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (each script's --quick)")
    parser.add_argument("--threads", type=int, default=None, help="passed to scripts that take --threads")
    parser.add_argument("--only", nargs="+", default=None, metavar="WORD",
                        help="run only scripts whose name contains one of these words")
    parser.add_argument("--out", type=Path, default=None,
                        help="results file (default benchmarks/RESULTS.md, or RESULTS-quick.md with --quick)")
    parser.add_argument("--dir", type=Path, default=HERE, help="folder holding the bench_*.py scripts")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per script (default 3600)")
    args = parser.parse_args(argv)
    out = args.out or HERE / ("RESULTS-quick.md" if args.quick else "RESULTS.md")

    scripts = sorted(args.dir.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if any(word in s.name for word in args.only)]
    if not scripts:
        print(f"no bench_*.py scripts in {args.dir}" + (f" matching {args.only}" if args.only else ""),
              file=sys.stderr)
        return 2

    parts = [header(args.quick, args.threads)]
    failed = []
    for path in scripts:
        extra, note = script_args(path, args.quick, args.threads)
        print(f"running {path.name} {' '.join(extra)}".rstrip() + " ...", file=sys.stderr, flush=True)
        code, stdout, stderr, wall = run_script(path, extra, args.timeout)
        title = f"## `{path.name}`" + (f" `{' '.join(extra)}`" if extra else "")
        meta = f"_wall time {wall:.1f} s" + (f"; {note}" if note else "") + "_"
        if code == 0:
            parts += [title, "", meta, "", stdout.strip(), ""]
        else:
            failed.append(path.name)
            tail = "\n".join(stderr.strip().splitlines()[-20:])
            parts += [title, "", meta, "", f"**FAILED** (exit code {code}); end of stderr:", "", "```",
                      tail, "```", ""]
            if stdout.strip():
                parts += ["Output before the failure:", "", stdout.strip(), ""]
        print(f"  {'ok' if code == 0 else f'FAILED ({code})'} in {wall:.1f} s", file=sys.stderr, flush=True)

    # Scripts print their own "## ..." headings; nest them one level below the script's heading.
    text = "\n".join(parts)
    text = "\n".join("#" + line if line.startswith("## ") and not line.startswith("## `") else line
                     for line in text.splitlines()) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(text)
    print(f"wrote {out}" + (f"; FAILED: {', '.join(failed)}" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
