"""An isolated JupyterLab for browser tests (adapted from shared/examples/jupyterlab-playwright).

Own config / runtime / settings / workspace dirs, a free loopback port, no
token, news and update pop-ups off, the app exposed as ``window.jupyterapp``;
its process group is stopped afterwards.  ``PYTHONPATH`` points at this
checkout so the kernel imports the ocrviz under test.
"""
from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = pathlib.Path(sys.executable).parent


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _write_settings(settings_dir: pathlib.Path) -> None:
    files = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
            {"fetchNews": "false", "checkForUpdates": False},
        "@jupyter-widgets/jupyterlab-manager/plugin.jupyterlab-settings": {"saveState": True},
    }
    for rel, content in files.items():
        p = settings_dir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(content))


def start_lab(root_dir: pathlib.Path, workdir: pathlib.Path, timeout: float = 120) -> tuple[subprocess.Popen, str]:
    """Start JupyterLab serving ``root_dir``; returns (process, base URL)."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(JUPYTER_CONFIG_DIR=str(workdir / "config"), JUPYTER_RUNTIME_DIR=str(workdir / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(workdir / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(workdir / "workspaces"), JUPYTER_PLATFORM_DIRS="1",
               PYTHONPATH=os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])),
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               OCRVIZ_COURSE_TEST_DIR=str(root_dir))    # where 02's hidden last cell writes explorer_expected.npz
    _write_settings(workdir / "settings")
    cmd = [str(VENV_BIN / "jupyter"), "lab", "--no-browser", "--allow-root",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
           "--LabApp.news_url=None", "--expose-app-in-browser", f"--ServerApp.root_dir={root_dir}"]
    log = open(workdir / f"lab-{port}.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    t0 = time.time()
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(url + "/api/status", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            pass
        if time.time() - t0 > timeout:
            stop_lab(proc)
            raise TimeoutError(f"jupyter lab did not answer within {timeout}s; see {log.name}")
        time.sleep(0.2)


def stop_lab(proc: subprocess.Popen) -> None:
    """Stop the server and its kernels (its own process group)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_kernel_idle(page, timeout: float = 90_000) -> None:
    page.wait_for_function(
        "() => window.jupyterapp?.shell?.currentWidget?.sessionContext?.session?.kernel?.status === 'idle'",
        timeout=timeout)


def run_notebook(browser, url: str, name: str, ready: str, count: int, shots: pathlib.Path,
                 notebook_width: int = 1400):
    """Open notebook ``name`` in a new page at ``notebook_width`` CSS px (the file browser folded
    away), run all its cells and wait until ``count`` elements match ``ready``; fail with the
    traceback (and a screenshot) if a cell raised.  Returns (page, open s, run-all s); the page
    collects uncaught JS errors in ``page.errors``."""
    import pytest

    page = browser.new_page(viewport={"width": notebook_width, "height": 1000})
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    t0 = time.time()
    page.goto(f"{url}/lab/tree/{name}?reset", wait_until="domcontentloaded")
    page.wait_for_selector(".jp-Notebook", timeout=90_000)
    wait_kernel_idle(page)
    page.evaluate("() => { if (!window.jupyterapp.shell.leftCollapsed) "
                  "window.jupyterapp.commands.execute('application:toggle-left-area'); }")
    page.wait_for_timeout(300)
    nb_w = page.evaluate("() => document.querySelector('.jp-NotebookPanel').getBoundingClientRect().width")
    page.set_viewport_size({"width": notebook_width + round(notebook_width - nb_w), "height": 1000})
    page.wait_for_function(f"() => Math.abs(document.querySelector('.jp-NotebookPanel')"
                           f".getBoundingClientRect().width - {notebook_width}) < 2", timeout=10_000)
    opened = round(time.time() - t0, 1)
    t0 = time.time()
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    # `ready` rendered, or a cell raised (then fail at once, with its traceback)
    page.wait_for_function(
        f"""() => document.querySelectorAll({ready!r}).length >= {count}
              || [...document.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]')]
                   .some((e) => /Traceback|Error:/.test(e.textContent))""", timeout=180_000)
    failed = page.evaluate("""() => [...document.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]')]
        .map((e) => e.textContent).filter((t) => /Traceback|Error:/.test(t)).join('\\n')""")
    if failed:
        page.screenshot(path=str(shots / f"lab_error_{pathlib.Path(name).stem}.png"))
        pytest.fail(f"{name} raised while running:\n{failed[-2000:]}")
    wait_kernel_idle(page)
    return page, opened, round(time.time() - t0, 1)
