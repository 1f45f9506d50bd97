"""The checkpoint problems ocrviz reports: every one a :class:`CheckpointError` (a ``ValueError``).

Re-exported by :mod:`ocrviz.checkpoints`; kept apart so that the file readers
(:mod:`ocrviz.checkpoint_pickle`) and the loaders can share them.
"""
from __future__ import annotations

ACCEPTED = "safetensors (.safetensors) or a torch state dict saved with torch.save (.pth, .pt, .bin, .ckpt)"


class CheckpointError(ValueError):
    """Base class of every checkpoint problem ocrviz reports."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The path does not exist or is not a file."""


class CheckpointFormatError(CheckpointError):
    """The file is not a checkpoint ocrviz can read (an image, text, a corrupt file, damaged metadata...)."""


class UnsafeCheckpointError(CheckpointError):
    """The torch file holds Python objects whose unpickling would run code, or a decompression bomb."""


class CheckpointMismatchError(CheckpointError):
    """Checkpoint keys or shapes do not fit the model; nothing was loaded."""

    def __init__(self, message: str, missing: list[str], unexpected: list[str],
                 shape_conflicts: list[tuple[str, tuple[int, ...], tuple[int, ...]]]) -> None:
        super().__init__(message)
        self.missing = missing
        self.unexpected = unexpected
        self.shape_conflicts = shape_conflicts  # (key, checkpoint shape, model shape)


class BrokenWeightsError(CheckpointError):
    """The weights hold NaN or infinite values (a diverged run, a damaged file); they are not loaded."""

    def __init__(self, message: str, tensors: list[str]) -> None:
        super().__init__(message)
        self.tensors = tensors
