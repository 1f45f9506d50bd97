"""``mmseg:NAME``: an official MMSegmentation checkpoint, downloaded once into a cache folder and verified.

    model = ocrviz.from_checkpoint("mmseg:ocrnet_hr48_4xb2-160k_cityscapes-512x1024")
    ocrviz explain --model mmseg:ocrnet_hr48_4xb2-160k_cityscapes-512x1024 street.png

The URL comes from MMSeg's model index (``mmseg/.mim/configs/<collection>/
metafile.yaml``, read as data, without importing mmseg) when MMSeg is
installed, else from :data:`OCRNET_WEIGHTS`, the OCRNet entries of MMSeg
1.2.2's index.  MMSeg names every weight file ``..._<date>_<time>-<8 hex>.pth``
where the 8 hex digits are the start of the file's sha256: the download is
checked against them before it is used.

The file goes to :func:`cache_dir` (``$OCRVIZ_CACHE``, else
``$XDG_CACHE_HOME/ocrviz``, else ``~/.cache/ocrviz``), written to a temporary
name and renamed only once complete and verified, so an interrupted or
corrupted download never leaves a file that looks finished.  Without network,
the error is one line naming the URL and where to put the file by hand.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

from .checkpoint_errors import CheckpointError

__all__ = ["PREFIX", "OCRNET_WEIGHTS", "cache_dir", "weights_url", "fetch", "DownloadError"]

PREFIX = "mmseg:"
BASE_URL = "https://download.openmmlab.com/mmsegmentation/v0.5/"
_STAMP = re.compile(r"_\d{8}_\d{6}-([0-9a-f]{8})$")
CHUNK = 1 << 20

# MMSeg 1.2.2's OCRNet entries: config name -> weight file stem (its folder is the stem without the stamp).
OCRNET_WEIGHTS = {f"ocrnet_{name}": stem for name, stem in (
    line.split() for line in """
hr18s_4xb2-40k_cityscapes-512x1024 ocrnet_hr18s_4xb2-40k_cityscapes-512x1024_20230227_145026-6c052a14
hr18_4xb2-40k_cityscapes-512x1024 ocrnet_hr18_512x1024_40k_cityscapes_20200601_033320-401c5bdd
hr48_4xb2-40k_cityscapes-512x1024 ocrnet_hr48_512x1024_40k_cityscapes_20200601_033336-55b32491
hr18s_4xb2-80k_cityscapes-512x1024 ocrnet_hr18s_512x1024_80k_cityscapes_20200601_222735-55979e63
hr18_4xb2-80k_cityscapes-512x1024 ocrnet_hr18_512x1024_80k_cityscapes_20200614_230521-c2e1dd4a
hr48_4xb2-80k_cityscapes-512x1024 ocrnet_hr48_512x1024_80k_cityscapes_20200601_222752-9076bcdf
hr18s_4xb2-160k_cityscapes-512x1024 ocrnet_hr18s_512x1024_160k_cityscapes_20200602_191005-f4a7af28
hr18_4xb2-160k_cityscapes-512x1024 ocrnet_hr18_512x1024_160k_cityscapes_20200602_191001-b9172d0c
hr48_4xb2-160k_cityscapes-512x1024 ocrnet_hr48_512x1024_160k_cityscapes_20200602_191037-dfbf1b0c
r101-d8_4xb2-40k_cityscapes-512x1024 ocrnet_r101-d8_512x1024_40k_b8_cityscapes_20200717_110721-02ac0f13
r101-d8_8xb2-40k_cityscapes-512x1024 ocrnet_r101-d8_512x1024_40k_b16_cityscapes_20200723_193726-db500f80
r101-d8_8xb2-80k_cityscapes-512x1024 ocrnet_r101-d8_512x1024_80k_b16_cityscapes_20200723_192421-78688424
hr18s_4xb4-80k_ade20k-512x512 ocrnet_hr18s_512x512_80k_ade20k_20200615_055600-e80b62af
hr18_4xb4-80k_ade20k-512x512 ocrnet_hr18_512x512_80k_ade20k_20200615_053157-d173d83b
hr48_4xb4-80k_ade20k-512x512 ocrnet_hr48_512x512_80k_ade20k_20200615_021518-d168c2d1
hr18s_4xb4-160k_ade20k-512x512 ocrnet_hr18s_512x512_160k_ade20k_20200615_184505-8e913058
hr18_4xb4-160k_ade20k-512x512 ocrnet_hr18_512x512_160k_ade20k_20200615_200940-d8fcd9d1
hr48_4xb4-160k_ade20k-512x512 ocrnet_hr48_512x512_160k_ade20k_20200615_184705-a073726d
hr18s_4xb4-20k_voc12aug-512x512 ocrnet_hr18s_512x512_20k_voc12aug_20200617_233913-02b04fcb
hr18_4xb4-20k_voc12aug-512x512 ocrnet_hr18_512x512_20k_voc12aug_20200617_233932-8954cbb7
hr48_4xb4-20k_voc12aug-512x512 ocrnet_hr48_512x512_20k_voc12aug_20200617_233932-9e82080a
hr18s_4xb4-40k_voc12aug-512x512 ocrnet_hr18s_512x512_40k_voc12aug_20200614_002025-42b587ac
hr18_4xb4-40k_voc12aug-512x512 ocrnet_hr18_512x512_40k_voc12aug_20200614_015958-714302be
hr48_4xb4-40k_voc12aug-512x512 ocrnet_hr48_512x512_40k_voc12aug_20200614_015958-255bc5ce
""".split("\n") if line.strip())}


class DownloadError(CheckpointError, OSError):
    """An ``mmseg:NAME`` that is unknown, could not be downloaded, or did not match its checksum."""


def cache_dir() -> Path:
    """``$OCRVIZ_CACHE``, else ``$XDG_CACHE_HOME/ocrviz``, else ``~/.cache/ocrviz``."""
    if os.environ.get("OCRVIZ_CACHE"):
        return Path(os.environ["OCRVIZ_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ocrviz"


def _from_table(name: str) -> str | None:
    stem = OCRNET_WEIGHTS.get(name)
    if stem is None:
        return None
    return f"{BASE_URL}ocrnet/{_STAMP.sub('', stem)}/{stem}.pth"


def _from_index(name: str) -> str | None:
    """The ``Weights`` URL of ``name`` in the installed MMSeg's model index (YAML data, mmseg not imported)."""
    spec = importlib.util.find_spec("mmseg")
    if spec is None or not spec.submodule_search_locations:
        return None
    configs = Path(list(spec.submodule_search_locations)[0]) / ".mim" / "configs"
    collection = configs / name.split("_", 1)[0] / "metafile.yaml"
    try:
        import yaml
        entries = yaml.load(collection.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["Models"]
    except (ImportError, OSError, AttributeError, ValueError, KeyError, TypeError):
        return None
    for entry in entries:
        if isinstance(entry, dict) and entry.get("Name") == name and isinstance(entry.get("Weights"), str):
            url = entry["Weights"]
            default = "https://download.openmmlab.com/mmsegmentation/v0.5/"
            return BASE_URL + url[len(default):] if url.startswith(default) else url
    return None


def weights_url(name: str) -> str:
    """The download URL of MMSeg's ``name`` (a config name, e.g. ``ocrnet_hr48_4xb2-160k_cityscapes-512x1024``)."""
    url = _from_index(name) or _from_table(name)
    if url is None:
        close = sorted(OCRNET_WEIGHTS, key=lambda n: -len(os.path.commonprefix([n, name])))[:3]
        where = "MMSeg's model index" if importlib.util.find_spec("mmseg") else "MMSeg's model index (not installed)"
        raise DownloadError(f"{PREFIX}{name}: not in {where} nor in ocrviz's OCRNet table; "
                            f"e.g. {', '.join(PREFIX + c for c in close)}")
    return url


def _expected_sha(url: str) -> str | None:
    found = _STAMP.search(url.rsplit("/", 1)[-1].rsplit(".", 1)[0])
    return found.group(1) if found else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, tmp: Path, dest: Path) -> None:
    from tqdm.auto import tqdm

    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name,
                      file=sys.stderr, leave=False) as bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise DownloadError(f"could not download {url} ({reason}); without network, download it elsewhere and "
                            f"put it at {dest}") from None


def fetch(name: str) -> Path:
    """The local path of MMSeg's checkpoint ``name``, downloaded into :func:`cache_dir` on first use.

    A cached file is used when its sha256 starts with the 8 hex digits in its
    name; a download is written to a temporary file, verified, then renamed.
    """
    name = name[len(PREFIX):] if name.startswith(PREFIX) else name
    url = weights_url(name)
    dest = cache_dir() / url.rsplit("/", 1)[-1]
    expected = _expected_sha(url)
    if dest.is_file() and (expected is None or _sha256(dest).startswith(expected)):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part{os.getpid()}")
    try:
        _download(url, tmp, dest)
        got = _sha256(tmp)
        if expected is not None and not got.startswith(expected):
            raise DownloadError(f"{url}: the download's sha256 {got[:16]}... does not start with {expected} as its "
                                f"name says (damaged or replaced); nothing was kept. Try again, or download it by "
                                f"hand and put it at {dest}")
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest
