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
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
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
