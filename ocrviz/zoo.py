"""The trained ToyCity models shipped in ``data/checkpoints`` (no downloads).

    model = ocrviz.load_model("toycity-ocr")     # eval mode
    model.class_names, model.palette
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .checkpoints import load_checkpoint
from .models import create_model

SHIPPED = ("toycity-ocr", "toycity-aspp", "toycity-fcn")
# Heads trained on toycity-fcn's frozen backbone by ocrviz.train_heads (`make heads`), everything else equal.
HEAD_MODELS = ("toycity-sa", "toycity-psp", "toycity-da", "toycity-cc", "toycity-ocr-fb", "toycity-aspp-fb",
               "toycity-fcn-fb")


def data_dir() -> Path:
    """The repository's ``data/`` folder (override with ``OCRVIZ_DATA``)."""
    env = os.environ.get("OCRVIZ_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "data"


def model_card(name: str) -> dict:
    if name not in SHIPPED + HEAD_MODELS:
        raise ValueError(f"unknown shipped model {name!r}; available: {', '.join(SHIPPED + HEAD_MODELS)}. "
                         "For your own checkpoint (ocrviz, official HRNet-OCR, MMSeg or openseg OCRNet) use ocrviz.from_checkpoint(path); "
                         "for an official MMSeg one, ocrviz.from_checkpoint('mmseg:ocrnet_hr48_4xb2-160k_cityscapes-512x1024')")
    path = data_dir() / "checkpoints" / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"model card {path} is missing; train it with "
                                f"`python -m ocrviz.train --out {path.with_suffix('')}` or set OCRVIZ_DATA")
    return json.loads(path.read_text())


def load_model(name: str) -> torch.nn.Module:
    """Build a shipped model, load its weights, set eval mode, class names and palette."""
    card = model_card(name)
    model = create_model(card["arch"], num_classes=card["num_classes"], **card.get("model_kwargs", {}))
    load_checkpoint(model, data_dir() / "checkpoints" / f"{name}.safetensors")
    model.class_names = list(card["class_names"])
    model.palette = [tuple(c) for c in card["palette"]]
    model.card = card
    return model.eval()
