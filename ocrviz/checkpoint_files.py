"""Read a checkpoint file into (state dict, metadata): the format from the content, never pickle code.

* safetensors: tensors plus str -> str metadata (ocrviz's JSON under
  ``"ocrviz"``); damaged headers or metadata are a :class:`CheckpointFormatError`;
* torch files: :func:`ocrviz.checkpoint_pickle.load_torch` (weights-only,
  training state as inert stand-ins, zip bombs refused), then the weights
  under ``state_dict`` / ``model`` / ``model_state_dict`` or at the top, and
  the metadata under ``metadata`` / ``meta`` (or openseg's ``config_dict``),
  with only plain values kept;
* weights holding NaN or inf are refused (:class:`BrokenWeightsError`).
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import torch

from .checkpoint_errors import (ACCEPTED, BrokenWeightsError, CheckpointFormatError, CheckpointNotFoundError)
from .checkpoint_pickle import load_torch, plain

_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")


def _sniff(path: Path) -> str:
    """'safetensors' | 'torch' from the first bytes, else raise CheckpointFormatError."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if head[8:9] == b"{" and 0 < header_len <= size - 8:
            return "safetensors"
    if head[:4] == b"PK\x03\x04":               # torch >= 1.6 zip format
        return "torch"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):  # pickle / legacy torch
        return "torch"
    what = "an empty file" if size == 0 else f"a file starting with {head[:8]!r}"
    raise CheckpointFormatError(f"{path} is not a checkpoint ({what}); accepted formats: {ACCEPTED}")


def _read_safetensors(path: Path, map_location: Any) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import SafetensorError, safe_open

    device = str(map_location) if isinstance(map_location, (str, torch.device)) else "cpu"
    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            raw_meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as e:
        raise CheckpointFormatError(f"{path} is not a valid safetensors file ({type(e).__name__}: "
                                    f"{str(e).strip()[:200]}); accepted formats: {ACCEPTED}") from e
    if "ocrviz" not in raw_meta:
        return tensors, dict(raw_meta)
    try:
        meta = json.loads(raw_meta["ocrviz"])
    except (json.JSONDecodeError, RecursionError) as e:
        raise CheckpointFormatError(f"{path}: its ocrviz metadata is damaged (not JSON: {e}); the weights may be "
                                    f"fine: load them into a model you build with ocrviz.load_checkpoint") from None
    if not isinstance(meta, dict):
        raise CheckpointFormatError(f"{path}: its ocrviz metadata is a JSON {type(meta).__name__}, not an object "
                                    f"(damaged); load the weights into a model you build with ocrviz.load_checkpoint")
    return tensors, meta


def _read_torch(path: Path, map_location: Any) -> tuple[dict[str, Any], dict]:
    payload = load_torch(path, map_location)
    meta: dict = {}
    if isinstance(payload, dict):
        for key in _WRAPPER_KEYS:
            if isinstance(payload.get(key), dict):
                for meta_key in ("metadata", "meta"):
                    if isinstance(payload.get(meta_key), dict):
                        meta = plain(payload[meta_key])      # training-state stand-ins dropped
                        break
                if not meta and isinstance(payload.get("config_dict"), (dict, str)):   # openseg.pytorch
                    meta = {"config_dict": plain(payload["config_dict"])}
                payload = payload[key]
                break
    if not isinstance(payload, dict) or not payload:
        what = "an empty state dict" if isinstance(payload, dict) else f"a {type(payload).__name__}"
        raise CheckpointFormatError(f"{path} holds {what}, not model weights; expected a dict of "
                                    f"tensors, or one under 'state_dict' or 'model'")
    bad = [k for k, v in payload.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointFormatError(f"{path}: {len(bad)} entries are not tensors (e.g. {bad[0]!r}: "
                                    f"{type(payload[bad[0]]).__name__}); expected a state dict of tensors, or one "
                                    f"under 'state_dict' or 'model' (top-level keys: {list(payload)[:8]})")
    return dict(payload), meta


def check_finite(sd: dict[str, torch.Tensor], path: Any) -> None:
    """Refuse weights holding NaN or inf, naming the tensors (a diverged run gives a model that predicts noise)."""
    bad = []
    for key, value in sd.items():
        if (value.is_floating_point() or value.is_complex()) and value.numel():
            if bool(torch.isfinite(value.sum())):     # a NaN or inf anywhere makes the sum non-finite
                continue
            finite = torch.isfinite(value)             # (or an overflow: then count exactly)
            if not bool(finite.all()):
                bad.append((key, int(torch.isnan(value).sum()), int((~finite).sum())))
    if bad:
        listed = "; ".join(f"{k}: {n} NaN, {m - n} inf of {sd[k].numel():,}" for k, n, m in bad[:8])
        raise BrokenWeightsError(
            f"{path}: {len(bad)} tensors hold NaN or inf values ({listed}{' ...' if len(bad) > 8 else ''}); "
            f"such a model predicts noise (a diverged training run or a damaged file), so it is not loaded. "
            f"Use an earlier checkpoint of the run", [k for k, _, _ in bad])


def _read(path: str | os.PathLike, map_location: Any, finite: bool = True) -> tuple[dict[str, torch.Tensor], dict]:
    p = Path(path)
    if not p.exists():
        raise CheckpointNotFoundError(f"checkpoint {p} does not exist; expected {ACCEPTED}")
    if not p.is_file():
        raise CheckpointNotFoundError(f"checkpoint {p} is not a file; expected {ACCEPTED}")
    sd, meta = (_read_safetensors if _sniff(p) == "safetensors" else _read_torch)(p, map_location)
    if finite:
        check_finite(sd, p)
    return sd, meta
