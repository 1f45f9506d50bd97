"""make venv's torch step (ocrviz/tools/torch_wheel.py): the CPU-only wheel on Linux without an
NVIDIA driver, from an index that answers; otherwise, quickly, the default index."""
from __future__ import annotations

import http.server
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from ocrviz.tools import torch_wheel

REPO = Path(__file__).resolve().parents[1]


class _Index(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:                         # noqa: N802
        self.send_response(200 if self.path == "/whl/cpu/torch/" else 404)
        self.end_headers()
        self.wfile.write(b"<a href='torch-2.13.0+cpu-cp311-cp311-linux_x86_64.whl'>torch</a>")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def index():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/whl/cpu"
    server.shutdown()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def fake_pip(tmp_path):
    """A pip command that records its arguments (one line per call) and installs nothing."""
    log = tmp_path / "pip.log"
    script = tmp_path / "pip.py"
    script.write_text(f"import sys\nopen({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n")
    return f"{sys.executable} {script}", log


def test_the_lock_pins_torch_without_a_local_label() -> None:
    pin = torch_wheel.locked_torch(REPO / "requirements.lock")
    assert pin.startswith("torch==") and "+" not in pin


@pytest.mark.parametrize("platform, nvidia, wanted", [("linux", False, True), ("linux", True, False),
                                                      ("darwin", False, False), ("win32", False, False)])
def test_which_machines_take_the_cpu_index(platform, nvidia, wanted) -> None:
    assert torch_wheel.wants_cpu_index(platform, nvidia)[0] is wanted


def test_linux_without_gpu_installs_the_pinned_torch_from_the_index(index, fake_pip, monkeypatch, capsys) -> None:
    monkeypatch.setattr(torch_wheel, "installed_version", lambda dist="torch": None)
    pip, log = fake_pip
    assert torch_wheel.main(["--lock", str(REPO / "requirements.lock"), "--index", index, "--pip", pip,
                             "--platform", "linux", "--nvidia", "no"]) == 0
    pin = torch_wheel.locked_torch(REPO / "requirements.lock")
    assert log.read_text().split() == ["install", "-q", "--timeout", "5", pin, "--index-url", index]


@pytest.mark.parametrize("platform, nvidia", [("darwin", "no"), ("linux", "yes")])
def test_other_machines_leave_torch_to_the_default_index(index, fake_pip, monkeypatch, capsys, platform, nvidia):
    monkeypatch.setattr(torch_wheel, "installed_version", lambda dist="torch": None)
    pip, log = fake_pip
    torch_wheel.main(["--index", index, "--pip", pip, "--platform", platform, "--nvidia", nvidia,
                      "--lock", str(REPO / "requirements.lock")])
    assert not log.exists() and "default index" in capsys.readouterr().out


@pytest.mark.parametrize("where", ["closed port", "no such host"])
def test_an_unreachable_index_falls_back_quickly(fake_pip, monkeypatch, capsys, where) -> None:
    monkeypatch.setattr(torch_wheel, "installed_version", lambda dist="torch": None)
    pip, log = fake_pip
    url = (f"http://127.0.0.1:{_closed_port()}/whl/cpu" if where == "closed port"
           else "http://ocrviz-no-such-host.invalid/whl/cpu")
    t0 = time.perf_counter()
    assert torch_wheel.main(["--index", url, "--pip", pip, "--platform", "linux", "--nvidia", "no",
                             "--timeout", "2", "--lock", str(REPO / "requirements.lock")]) == 0
    assert time.perf_counter() - t0 < 3
    assert not log.exists()
    out = capsys.readouterr().out
    assert "did not answer" in out and "default index" in out


def test_an_installed_pinned_torch_is_kept(fake_pip, monkeypatch, capsys) -> None:
    pin = torch_wheel.locked_torch(REPO / "requirements.lock").split("==")[1]
    monkeypatch.setattr(torch_wheel, "installed_version", lambda dist="torch": pin + "+cpu")
    pip, log = fake_pip
    torch_wheel.main(["--pip", pip, "--platform", "linux", "--nvidia", "no", "--lock", str(REPO / "requirements.lock")])
    assert not log.exists() and "already installed" in capsys.readouterr().out


def test_the_makefile_runs_it_before_the_main_install() -> None:
    make = (REPO / "Makefile").read_text()
    step, main = make.index("ocrviz/tools/torch_wheel.py"), make.index('-c requirements.lock -e ".[test,mmseg]"')
    assert step < main and "+cpu" not in make
