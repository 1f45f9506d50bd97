"""Chromium (Debian's, via Playwright) for the browser tests; screenshots under artifacts/."""
from __future__ import annotations

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
SHOTS = REPO / "artifacts" / "screenshots"


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not pathlib.Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}; `apt-get install -y chromium` or set CHROMIUM=/path")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def shots() -> pathlib.Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory):
    """One JupyterLab for the session's browser tests: (base URL, the folder it serves); each test
    module writes its notebook there (its own kernel)."""
    from lab_harness import start_lab, stop_lab

    root = tmp_path_factory.mktemp("nbroot")
    proc, url = start_lab(root, tmp_path_factory.mktemp("labwork"))
    yield url, root
    stop_lab(proc)
