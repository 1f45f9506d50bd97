"""Read a torch file without ever running code from it: weights-only unpickling, inert training state.

A torch checkpoint is a pickle, and a pickle can name any Python function to
call (``os.system`` through ``__reduce__``).  ocrviz reads torch files only
with ``torch.load(weights_only=True)``, whose unpickler builds tensors,
numbers, strings and containers and refuses every other name.

Training runs store more than weights.  A file written by mmengine's Runner
(MMSeg 1.x ``iter_N.pth``) also holds ``message_hub`` (mmengine
``HistoryBuffer`` objects with numpy arrays and bound methods), ``optimizer``
and ``param_schedulers``.  ocrviz needs none of it, so for the names in
:data:`INERT_GLOBALS` the unpickler builds an :class:`Inert` stand-in instead:
an object that records the arguments it was given and never calls, imports or
looks up anything.  Any other name (``posix.system``, ``builtins.eval``,
``subprocess.Popen``...) is refused before unpickling starts, naming it: the
globals are listed statically from the pickle's opcodes
(``torch.serialization.get_unsafe_globals_in_checkpoint``), nothing is run.

Before any of that, the zip directory is read (:func:`check_zip_directory`):
torch writes its entries uncompressed, so an entry that would inflate far
beyond its compressed size (a decompression bomb: 0.5 MB -> 512 MiB) is
refused before a byte of it is inflated.
"""
from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from .checkpoint_errors import ACCEPTED, CheckpointError, CheckpointFormatError, UnsafeCheckpointError

# Training-state classes and functions seen in real checkpoints; each is built as an Inert stand-in.
INERT_GLOBALS = frozenset({
    "mmengine.logging.history_buffer.HistoryBuffer",            # message_hub.log_scalars
    "mmengine.config.config.ConfigDict",
    "builtins.getattr",            # HistoryBuffer._statistics_methods pickles bound methods getattr(buf, 'min')
    "numpy.ndarray", "numpy.dtype",
    "numpy._core.multiarray._reconstruct", "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray.scalar", "numpy.core.multiarray.scalar",
    "argparse.Namespace", "pathlib.PosixPath", "pathlib.WindowsPath",     # Lightning / fairseq hparams
    "pytorch_lightning.utilities.parsing.AttributeDict", "lightning_fabric.utilities.data.AttributeDict",
})
INERT_PREFIXES = ("numpy.dtypes.",)                              # numpy 2's Float64DType and siblings
MAX_INFLATION = 20              # inflated / compressed size allowed for a compressed zip entry
INFLATION_SLACK = 1 << 20       # ... beyond 1 MiB


class Inert:
    """Stands in for a training-state object named in a checkpoint; it never calls anything.

    ``global_name`` is the name the file gave, ``args`` / ``state`` what the
    pickle passed to it.  Nothing ocrviz reads (``state_dict``, ``meta``) uses it.
    """
    global_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "Inert":
        obj = object.__new__(cls)
        obj.__dict__["args"] = args
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.__dict__["state"] = state

    def __repr__(self) -> str:
        return f"<inert stand-in for {self.global_name}>"


def _stand_in(name: str) -> tuple[type, str]:
    return type(name.rsplit(".", 1)[-1], (Inert,), {"global_name": name}), name


def is_inert(name: str) -> bool:
    """Whether the global ``name`` (``module.qualname``) is built as an :class:`Inert` stand-in."""
    return name in INERT_GLOBALS or name.startswith(INERT_PREFIXES)


def check_zip_directory(path: Path) -> None:
    """Refuse a zip whose entries would inflate out of proportion, reading only the directory."""
    try:
        with zipfile.ZipFile(path) as z:
            entries = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointFormatError(f"{path} is a damaged zip file ({e}); accepted formats: {ACCEPTED}") from e
    size = path.stat().st_size
    total = 0
    for info in entries:
        total += info.file_size
        if info.compress_type != zipfile.ZIP_STORED and \
                info.file_size > MAX_INFLATION * info.compress_size + INFLATION_SLACK:
            raise UnsafeCheckpointError(
                f"{path}: entry {info.filename!r} would inflate from {info.compress_size:,} to "
                f"{info.file_size:,} bytes ({info.file_size / max(info.compress_size, 1):,.0f}x; torch.save "
                f"writes its entries uncompressed); refused as a decompression bomb before inflating it")
    if total > MAX_INFLATION * size + INFLATION_SLACK:
        raise UnsafeCheckpointError(f"{path}: its {len(entries)} entries would inflate to {total:,} bytes from a "
                                    f"{size:,}-byte file; refused as a decompression bomb before inflating it")


def unsafe_message(path: Path, detail: str) -> str:
    return (f"{path} contains Python objects beyond tensors ({detail}); ocrviz never executes pickle code, "
            f"so it will not load this file.  To convert it, load it yourself in a trusted environment "
            f"(full unpickling only if you trust its origin), put the weights into the model and save them "
            f"with ocrviz.save_checkpoint(model, 'weights.safetensors') "
            f"(or safetensors.torch.save_file(state_dict, 'weights.safetensors')).")


def _first_detail(err: Exception) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if "GLOBAL" in ln or "Unsupported" in ln]
    return lines[0] if lines else f"{type(err).__name__}: {str(err).strip()[:200]}"


def _torch_load(path: Path, map_location: Any) -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pickle protocol.*")
        return torch.load(path, map_location=map_location, weights_only=True)


def load_torch(path: Path, map_location: Any) -> Any:
    """The object a torch file holds, unpickled weights-only; allow-listed training state as Inert.

    Raises :class:`UnsafeCheckpointError` (code it would run, naming the
    globals; a decompression bomb) or :class:`CheckpointFormatError`.
    """
    is_zip = zipfile.is_zipfile(path)
    if is_zip:
        check_zip_directory(path)
    try:
        try:
            return _torch_load(path, map_location)
        except pickle.UnpicklingError as first:
            if not is_zip:                  # legacy format: several pickles, no static listing
                raise UnsafeCheckpointError(unsafe_message(path, _first_detail(first))) from None
            if not hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint"):    # torch < 2.6
                raise UnsafeCheckpointError(unsafe_message(path, _first_detail(first) + "; reading training "
                                                           "state as inert stand-ins needs torch >= 2.6"))
            names = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(os.fspath(path)))
            refused = [n for n in names if not is_inert(n)]
            if refused or not names:
                what = (f"it would call {', '.join(refused[:5])}{' and more' if len(refused) > 5 else ''}"
                        if refused else _first_detail(first))
                raise UnsafeCheckpointError(unsafe_message(path, what)) from None
            with torch.serialization.safe_globals([_stand_in(n) for n in names]):
                return _torch_load(path, map_location)
    except CheckpointError:
        raise
    except pickle.UnpicklingError as e:    # the stand-ins were not enough: an object built another way
        raise UnsafeCheckpointError(unsafe_message(path, _first_detail(e))) from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, IndexError) as e:
        raise CheckpointFormatError(f"{path} could not be read as a torch checkpoint ({type(e).__name__}: "
                                    f"{str(e).strip()[:200]}); accepted formats: {ACCEPTED}") from e


def plain(value: Any, depth: int = 0) -> Any:
    """``value`` with only strings, numbers, booleans, None, lists and str-keyed dicts kept (tuples become
    lists; stand-ins, tensors and anything else are dropped): what metadata may hold."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if depth > 32:
        return None
    if isinstance(value, (list, tuple)):
        return [plain(v, depth + 1) for v in value if _keeps(v)]
    if isinstance(value, dict):
        return {k: plain(v, depth + 1) for k, v in value.items() if isinstance(k, str) and _keeps(v)}
    return None


def _keeps(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, list, tuple, dict)) or value is None
