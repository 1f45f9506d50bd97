"""The dependency lists in pyproject.toml, environment.yml and the lock agree."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject() -> set[str]:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = meta["dependencies"] + meta["optional-dependencies"]["test"]
    return {_name(r) for r in reqs}


def _environment_yml() -> set[str]:
    names, in_pip = set(), False
    for line in (REPO / "environment.yml").read_text().splitlines():
        s = line.split("#")[0].rstrip()
        if s.strip() == "- pip:":
            in_pip = True
            continue
        if in_pip and s.strip().startswith("- ") and not s.strip().startswith("- -e"):
            names.add(_name(s.strip()[2:]))
    return names


def test_environment_yml_mirrors_pyproject() -> None:
    py, env = _pyproject(), _environment_yml()
    assert py == env, f"only in pyproject: {sorted(py - env)}; only in environment.yml: {sorted(env - py)}"


def test_lock_pins_every_dependency_and_cpu_torch() -> None:
    lock = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if "==" in line:
            n, v = line.split("==", 1)
            lock[_name(n)] = v
    missing = _pyproject() - set(lock)
    assert not missing, f"not pinned in requirements.lock: {sorted(missing)}"
    assert lock["torch"].startswith("2.13.0"), lock["torch"]
