"""Install the locked torch from PyTorch's CPU index where that is the wheel a machine needs.

``make venv`` (and so ``make lab`` / ``make test``) runs this file with the
new virtual environment's Python *before* the main install, by path, because
nothing but the standard library is installed yet::

    .venv/bin/python ocrviz/tools/torch_wheel.py --lock requirements.lock

PyPI's torch for Linux is the CUDA build (several GB of CUDA libraries); on a
laptop without an NVIDIA GPU the CPU-only build of the same version (about
200 MB) from https://download.pytorch.org/whl/cpu does the same work.  So:

* Linux, no NVIDIA driver (no ``nvidia-smi``, no ``/proc/driver/nvidia``):
  ``pip install torch==<locked> --index-url <CPU index>``, after checking
  within ``--timeout`` seconds (default 5) that the index answers.  If it does
  not (an offline mirror, a CI machine that reaches only PyPI) or pip fails,
  one line says so and the main install takes torch from the default index.
* macOS, Windows: PyPI's wheel is already CPU-only (Apple's MPS included).
* Linux with an NVIDIA driver: PyPI's CUDA wheel is the one it needs.
* torch already installed at the locked version: nothing to do.

The lock pins ``torch==X`` without a local label: pip's ``==X`` accepts the
CPU index's ``X+cpu``, so the main install (``-c requirements.lock``) keeps
it.  ``--index ""`` (``make venv TORCH_INDEX=``) skips this step.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def locked_torch(lock: Path) -> str:
    """The ``torch==X`` line of a requirements lock."""
    for line in lock.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.lower().startswith("torch=="):
            return line
    raise ValueError(f"{lock} pins no torch (no 'torch==' line); add the version the project is tested with")


def has_nvidia_driver() -> bool:
    """An NVIDIA driver on this machine: ``nvidia-smi`` on PATH or the kernel module's proc entry."""
    from shutil import which

    return which("nvidia-smi") is not None or Path("/proc/driver/nvidia/version").exists()


def wants_cpu_index(platform: str, nvidia: bool) -> tuple[bool, str]:
    """(use the CPU index?, why) for ``sys.platform`` and whether an NVIDIA driver is present."""
    if not platform.startswith("linux"):
        return False, f"{platform}: PyPI's torch wheel is already CPU-only"
    if nvidia:
        return False, "Linux with an NVIDIA driver: PyPI's CUDA wheel"
    return True, "Linux without an NVIDIA driver: the CPU-only wheel"


def reachable(index: str, timeout: float) -> tuple[bool, str]:
    """Does ``index``/torch/ answer within ``timeout`` seconds? (yes/no, what happened)."""
    url = index.rstrip("/") + "/torch/"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=timeout) as r:
            return r.status == 200, f"HTTP {r.status}"
    except urllib.error.HTTPError as e:
        return False, f"HTTP {e.code}"
    except (OSError, ValueError) as e:                  # DNS, refused, timeout, a malformed URL
        return False, f"{type(e).__name__}: {getattr(e, 'reason', e)}"


def installed_version(dist: str = "torch") -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock", type=Path, default=Path("requirements.lock"))
    parser.add_argument("--index", default=os.environ.get("TORCH_INDEX", CPU_INDEX),
                        help=f"the CPU-only index (default {CPU_INDEX}); empty: skip this step")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the index (default 5)")
    parser.add_argument("--pip", default=f"{shlex.quote(sys.executable)} -m pip",
                        help="the pip command (default: this Python's)")
    parser.add_argument("--platform", default=sys.platform, help=argparse.SUPPRESS)      # for the tests
    parser.add_argument("--nvidia", choices=["auto", "yes", "no"], default="auto", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    say = lambda msg: print(f"torch_wheel: {msg}", flush=True)  # noqa: E731
    pin = locked_torch(args.lock)
    have = installed_version()
    if have is not None and have.split("+")[0] == pin.split("==", 1)[1]:
        say(f"torch {have} already installed")
        return 0
    if not args.index:
        say("no CPU index given (TORCH_INDEX is empty): torch comes from the default index")
        return 0
    nvidia = has_nvidia_driver() if args.nvidia == "auto" else args.nvidia == "yes"
    use, why = wants_cpu_index(args.platform, nvidia)
    if not use:
        say(f"{why}; torch comes from the default index")
        return 0
    t0 = time.perf_counter()
    ok, what = reachable(args.index, args.timeout)
    if not ok:
        say(f"{args.index} did not answer ({what}, {time.perf_counter() - t0:.1f} s): torch comes from the "
            f"default index (on Linux that is the CUDA build, several GB)")
        return 0
    cmd = shlex.split(args.pip) + ["install", "-q", "--timeout", str(int(max(args.timeout, 1))), pin,
                                   "--index-url", args.index]
    say(f"{why}: {' '.join(shlex.quote(c) for c in cmd)}")
    if subprocess.run(cmd).returncode != 0:
        say("that failed: torch comes from the default index")
    return 0


if __name__ == "__main__":
    sys.exit(main())
