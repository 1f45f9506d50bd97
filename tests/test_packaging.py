"""The dependency lists in pyproject.toml, environment.yml and the lock agree, and environment.yml
installs what the Makefile installs (the same extras, constrained by the same lock)."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject() -> set[str]:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = meta["optional-dependencies"]
    reqs = meta["dependencies"] + extras["test"] + extras["mmseg"]
    return {_name(r) for r in reqs}


def _environment_yml() -> set[str]:
    names, in_pip = set(), False
    for line in (REPO / "environment.yml").read_text().splitlines():
        s = line.split("#")[0].rstrip()
        if s.strip() == "- pip:":
            in_pip = True
            continue
        if in_pip and s.strip().startswith("- ") and not s.strip().startswith("- -"):    # options aside
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


def test_environment_yml_installs_what_the_makefile_installs() -> None:
    import shlex

    env = [ln.split("#")[0].strip() for ln in (REPO / "environment.yml").read_text().splitlines()]
    options = [ln[2:] for ln in env if ln.startswith(("- -e", "- -c"))]
    make = next(ln for ln in (REPO / "Makefile").read_text().splitlines() if "pip install" in ln and " -e " in ln)
    words = shlex.split(make.split("pip install", 1)[1])
    wanted = [f"-c {words[words.index('-c') + 1]}", f"-e {words[words.index('-e') + 1]}"]
    assert options == wanted == ["-c requirements.lock", "-e .[test,mmseg]"], (options, make)


def test_environment_yml_and_the_makefile_take_torch_from_the_same_cpu_index() -> None:
    from ocrviz.tools.torch_wheel import CPU_INDEX

    env = [ln.split("#")[0].strip() for ln in (REPO / "environment.yml").read_text().splitlines()]
    assert f"- --extra-index-url {CPU_INDEX}" in env
    assert f"TORCH_INDEX ?= {CPU_INDEX}" in (REPO / "Makefile").read_text()
    assert "+cpu" not in (REPO / "requirements.lock").read_text()


def test_make_lab_turns_off_the_news_toast_and_update_check() -> None:
    """JupyterLab asks on first launch whether to fetch its news; page_config["news"]["disabled"]
    is true when news_url is None (jupyterlab/labapp.py), so `make lab` passes that."""
    make = (REPO / "Makefile").read_text()
    args = make[make.index("LAB_ARGS ?="):make.index("\nlab:")]
    assert "--LabApp.news_url=None" in args
    assert "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate" in args
