"""The front end's JS unit tests (tests/js/*.test.mjs, node's built-in runner) inside pytest, so that
``make test`` runs them; Node.js is the machine's or the test extra's (node_bin.py).  Also: the numbers
they check come from today's Python (fixtures.json), and the committed bundle is a build of the sources."""
from __future__ import annotations

import importlib.util
import pathlib
import subprocess

import pytest

HERE = pathlib.Path(__file__).parent
REPO = HERE.parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_ocrviz_js_{name}", HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


node_bin = _load("node_bin")


def _node() -> list[str]:
    cmd = node_bin.command("node")
    if cmd is None:
        pytest.fail(node_bin.missing_message("node"))
    return cmd


def test_fixtures_are_todays_python_numbers() -> None:
    fresh = _load("make_fixtures").fixtures()
    assert (HERE / "fixtures.json").read_text() == fresh, \
        "tests/js/fixtures.json differs from what Python writes today: run python tests/js/make_fixtures.py"


def test_js_unit_tests_pass() -> None:
    files = sorted(str(p.relative_to(REPO)) for p in HERE.glob("*.test.mjs"))
    assert len(files) >= 5, files
    run = subprocess.run([*_node(), "--test", "--test-reporter=tap", *files], cwd=REPO, capture_output=True, text=True, timeout=300)
    tail = (run.stdout + run.stderr)[-6000:]
    assert run.returncode == 0, f"node --test failed:\n{tail}"
    assert "# fail 0" in run.stdout, tail


def test_committed_bundle_is_a_build_of_the_sources() -> None:
    if not (REPO / "node_modules" / "esbuild").exists():
        pytest.skip("esbuild is not installed here (make js-check installs it with npm ci and checks)")
    run = subprocess.run([*_node(), "ocrviz/widgets/js/build.mjs", "--check"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
