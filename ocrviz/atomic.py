"""Write a file all at once or not at all: a temporary file beside it, then a rename.

A reader never sees half a page, and a failed run leaves an existing file as it
was.  Used by every writer of user-facing files (the explorer export, the
command line, the handouts, training's model card).  Several files that belong
together (a report page and its JSON) are written as a set: every one is
written in full first, then all are renamed; when a rename fails the ones
already renamed are put back.  Files get the mode ``open()`` would give them
(0666 less the umask), not ``mkstemp``'s 0600.

    >>> write_atomic(Path("report.html"), "<html>...</html>")   # doctest: +SKIP
    >>> write_atomic_many([("report.html", page), ("report.json", numbers)])   # doctest: +SKIP
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Sequence

_SURROGATE = re.compile("[\ud800-\udfff]")


def file_mode() -> int:
    """The mode a new file gets from ``open()`` here: 0o666 less the process umask."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:        # read without changing it (threads)
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def printable(text: str) -> str:
    """``text`` that encodes as UTF-8: lone surrogates (a non-UTF-8 file name as Python decodes it,
    or a broken string from a checkpoint) become U+FFFD, as a browser shows undecodable bytes."""
    return _SURROGATE.sub("\ufffd", text)


def check_folder_writable(path: str | os.PathLike) -> Path:
    """Create and remove a temporary file beside ``path``; ``OSError`` (naming the folder) if that fails.

    Called before long work, so that a read-only folder is reported before the work, not after.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a folder; give a file name inside it, "
                                f"e.g. {str(path / 'out.html')!r}")
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
    except OSError as e:
        raise type(e)(e.errno, f"cannot write in the folder {str(folder)!r} ({e.strerror})") from None
    os.close(fd)
    os.unlink(tmp)
    return path


def stage(path: str | os.PathLike, content: str | bytes) -> Path:
    """Write ``content`` (str: UTF-8) in full to a temporary file beside ``path``; return the temporary file.

    ``commit`` renames it into place; ``discard`` removes it.  Nothing at ``path`` changes here.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a folder; give a file name inside it, "
                                f"e.g. {str(path / 'out.html')!r}")
    data = printable(content).encode("utf-8") if isinstance(content, str) else bytes(content)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, file_mode())                     # as open() would have made it (mkstemp: 0600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        discard([tmp])
        raise
    return Path(tmp)


def discard(tmps: Sequence[str | os.PathLike]) -> None:
    """Remove staged temporary files (those already gone are fine)."""
    for tmp in tmps:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def commit(staged: Sequence[tuple[str | os.PathLike, str | os.PathLike]]) -> None:
    """Rename each staged (temporary, final) pair into place, all or none.

    A final file that exists is first kept under a hard link beside it; when a later
    rename fails, the files already renamed get their old content back (or are removed
    when they were new) and every temporary file is removed before the error propagates.
    """
    done: list[tuple[Path, Path | None]] = []             # renamed: (final, its old content or None)
    olds: list[Path] = []
    try:
        for tmp, final in staged:
            final = Path(final)
            old = None
            if final.exists():
                old = final.with_name(f".{final.name}.{os.getpid()}.{os.urandom(4).hex()}.old")
                os.link(final, old)
                olds.append(old)
            os.replace(tmp, final)
            done.append((final, old))
    except BaseException:
        for final, old in reversed(done):
            try:
                if old is not None:
                    os.replace(old, final)
                else:
                    os.unlink(final)
            except OSError:
                pass
        discard([t for t, _ in staged] + olds)
        raise
    discard(olds)


def write_atomic_many(items: Sequence[tuple[str | os.PathLike, str | bytes]]) -> list[Path]:
    """Write several files as a set: all of them in full, or none of them (old contents kept)."""
    tmps: list[Path] = []
    try:
        for path, content in items:
            tmps.append(stage(path, content))
    except BaseException:
        discard(tmps)
        raise
    commit([(t, p) for t, (p, _) in zip(tmps, items)])
    return [Path(p) for p, _ in items]


def write_atomic(path: str | os.PathLike, text: str | bytes) -> Path:
    """Write ``text`` (str: UTF-8, lone surrogates as U+FFFD) to ``path`` through a temporary file
    in the same folder, then rename."""
    return write_atomic_many([(path, text)])[0]
