"""``mmseg:NAME``: URL from MMSeg's model index or ocrviz's table, download to the cache, verified, atomic.

No test touches the internet: a loopback HTTP server serves a checkpoint the
test writes, under a name whose 8 hex digits are that file's sha256 prefix
(MMSeg's naming), and ``BASE_URL`` points at it.
"""
from __future__ import annotations

import hashlib
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

import ocrviz
from ocrviz import download
from ocrviz.cli import InputError, load_model_arg, main
from ocrviz.models import create_model

NAME = "ocrnet_tiny-test_1x1-1k_toy-64x64"


def small() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("ocrnet", num_classes=3, widths=(4, 8, 8, 8), mid_channels=8, key_channels=4).eval()


@pytest.fixture
def served(tmp_path, monkeypatch):
    """(folder served, request log): a loopback server at BASE_URL; OCRVIZ_CACHE in tmp_path."""
    root = tmp_path / "served"
    root.mkdir()
    log: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, fmt, *args):
            log.append(self.path)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(download, "BASE_URL", f"http://127.0.0.1:{httpd.server_port}/")
    monkeypatch.setenv("OCRVIZ_CACHE", str(tmp_path / "cache"))
    yield root, log
    httpd.shutdown()
    httpd.server_close()


def publish(root: Path, monkeypatch, content: bytes, claimed_sha: str | None = None) -> Path:
    """Put ``content`` where MMSeg would, named by ``claimed_sha`` (default: its true sha256 prefix)."""
    sha = claimed_sha or hashlib.sha256(content).hexdigest()[:8]
    stem = f"ocrnet_tiny_64x64_1k_toy_20260101_000000-{sha}"
    folder = root / "ocrnet" / "ocrnet_tiny_64x64_1k_toy"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.pth").write_bytes(content)
    monkeypatch.setitem(download.OCRNET_WEIGHTS, NAME, stem)
    return folder / f"{stem}.pth"


def checkpoint_bytes(tmp_path) -> bytes:
    return ocrviz.save_checkpoint(small(), tmp_path / "made.pth").read_bytes()


def test_mmseg_name_downloads_verifies_caches_and_loads(tmp_path, monkeypatch, served):
    root, log = served
    served_file = publish(root, monkeypatch, checkpoint_bytes(tmp_path))
    model = ocrviz.from_checkpoint(f"mmseg:{NAME}")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), small()(x))
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert cached == [served_file.name]                               # no temporary file left
    assert (tmp_path / "cache" / served_file.name).read_bytes() == served_file.read_bytes()
    assert log == [f"/ocrnet/ocrnet_tiny_64x64_1k_toy/{served_file.name}"]
    ocrviz.from_checkpoint(f"mmseg:{NAME}")                            # second time: from the cache
    assert len(log) == 1
    assert load_model_arg(f"mmseg:{NAME}").num_classes == 3 and len(log) == 1   # the CLI's --model


def test_the_command_line_from_mmseg_name_to_a_page(tmp_path, monkeypatch, served, capsys):
    from PIL import Image

    root, log = served
    publish(root, monkeypatch, checkpoint_bytes(tmp_path))
    image = tmp_path / "street.png"
    Image.new("RGB", (64, 48), (90, 120, 30)).save(image)
    out = tmp_path / "street.html"
    code = main(["explain", "--model", f"mmseg:{NAME}", str(image), "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    assert out.stat().st_size > 10_000 and len(log) == 1


def test_a_download_that_does_not_match_its_checksum_is_not_kept(tmp_path, monkeypatch, served):
    root, _ = served
    publish(root, monkeypatch, checkpoint_bytes(tmp_path), claimed_sha="0badc0de")
    with pytest.raises(download.DownloadError, match=r"sha256 [0-9a-f]{16}\.\.\. does not start with 0badc0de"):
        ocrviz.from_checkpoint(f"mmseg:{NAME}")
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_damaged_cached_file_is_downloaded_again(tmp_path, monkeypatch, served):
    root, log = served
    served_file = publish(root, monkeypatch, checkpoint_bytes(tmp_path))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / served_file.name).write_bytes(b"half a file")
    assert ocrviz.from_checkpoint(f"mmseg:{NAME}").num_classes == 3
    assert len(log) == 1


def test_without_network_one_line_names_the_url_and_where_to_put_the_file(tmp_path, monkeypatch, capsys):
    with socket.socket() as s:                    # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(download, "BASE_URL", f"http://127.0.0.1:{port}/")
    monkeypatch.setenv("OCRVIZ_CACHE", str(tmp_path / "cache"))
    name = "ocrnet_hr48_4xb2-160k_cityscapes-512x1024"
    monkeypatch.setattr(download, "_from_index", lambda n: None)     # the table's URL, at the dead port
    with pytest.raises(download.DownloadError) as info:
        ocrviz.from_checkpoint(f"mmseg:{name}")
    text = str(info.value)
    file = "ocrnet_hr48_512x1024_160k_cityscapes_20200602_191037-dfbf1b0c.pth"
    assert "\n" not in text
    assert f"http://127.0.0.1:{port}/ocrnet/ocrnet_hr48_512x1024_160k_cityscapes/{file}" in text
    assert f"put it at {tmp_path / 'cache' / file}" in text
    from PIL import Image

    image = tmp_path / "x.png"
    Image.new("RGB", (64, 64)).save(image)
    code = main(["explain", "--model", f"mmseg:{name}", str(image), "-o", str(tmp_path / "out.html")])
    err = capsys.readouterr().err
    assert code == 2 and "could not download" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(InputError, match="not in MMSeg's model index"):
        load_model_arg("mmseg:ocrnet_nonexistent")


def test_the_table_agrees_with_mmsegs_model_index():
    """Every OCRNet entry of the installed MMSeg's index (parsed here independently) resolves to its URL;
    the table holds the same URLs, and every file name carries an 8-hex sha256 prefix."""
    import importlib.util
    import yaml

    spec = importlib.util.find_spec("mmseg")
    assert spec is not None, "the interop extra (MMSeg) is needed: make test installs it"
    meta = Path(list(spec.submodule_search_locations)[0]) / ".mim" / "configs" / "ocrnet" / "metafile.yaml"
    first: dict[str, str] = {}
    for entry in yaml.safe_load(meta.read_text())["Models"]:
        first.setdefault(entry["Name"], entry["Weights"])
    assert len(first) == 22
    for name, url in first.items():
        assert download.weights_url(name) == url
        assert download._from_table(name) == url, name
    assert set(download.OCRNET_WEIGHTS) - set(first) == {        # named 80k in the index by mistake
        "ocrnet_hr18s_4xb4-160k_ade20k-512x512", "ocrnet_hr18_4xb4-160k_ade20k-512x512"}
    assert all(download._expected_sha(download._from_table(n)) for n in download.OCRNET_WEIGHTS)
