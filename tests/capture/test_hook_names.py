"""The ordered list of hook names is part of the contract (docs/CONTRACT.md)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ocrviz.capture import hook_names, run_with_cache
from ocrviz.models.hook_point import HookPoint
from ocrviz.models.ocr import OCRHead

BLOCK = "head.ocr_distri_head.object_context_block."
OCR_ORDER = [
    "hook_features",
    "head.hook_soft_regions",
    "head.hook_pixel_feats",
    "head.ocr_gather_head.hook_region_weights",
    "head.ocr_gather_head.hook_proxies",
    BLOCK + "hook_query",
    BLOCK + "hook_key",
    BLOCK + "hook_value",
    BLOCK + "hook_sim_map",
    BLOCK + "hook_context",
    BLOCK + "hook_object_context",
    "head.ocr_distri_head.hook_augmented",
    "head.hook_head_logits",
    "hook_logits",
]
ASPP_ORDER = ["hook_features", "head.hook_branch0", "head.hook_branch1", "head.hook_branch2",
              "head.hook_branch3", "head.hook_pool", "head.hook_project", "hook_logits"]


class HandBuilt(nn.Module):
    """backbone + head=OCRHead, written here so the order does not depend on SegModel."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Conv2d(3, 12, 3, stride=4, padding=1)
        self.head = OCRHead(12, 3, mid_channels=8, key_channels=4)
        self.hook_features = HookPoint()
        self.hook_logits = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, main = self.head(self.hook_features(self.backbone(x)))
        return self.hook_logits(F.interpolate(main, size=x.shape[-2:], mode="bilinear", align_corners=True))


def test_create_model_ocrnet_hook_order(ocr_model, image) -> None:
    _, cache = run_with_cache(ocr_model, image)
    assert cache.names() == OCR_ORDER
    assert sorted(hook_names(ocr_model)) == sorted(OCR_ORDER)


def test_hand_built_ocr_model_hook_order() -> None:
    _, cache = run_with_cache(HandBuilt().eval(), torch.randn(1, 3, 16, 16))
    assert cache.names() == OCR_ORDER


def test_execution_order_differs_from_registration_order(ocr_model, image) -> None:
    # named_modules() lists head.ocr_gather_head.* before head.hook_soft_regions; names() must not.
    assert hook_names(ocr_model) != OCR_ORDER
    _, cache = run_with_cache(ocr_model, image)
    assert cache.names().index("head.hook_soft_regions") < cache.names().index(
        "head.ocr_gather_head.hook_region_weights")


def test_aspp_hook_order(aspp_model, image) -> None:
    _, cache = run_with_cache(aspp_model, image)
    assert cache.names() == ASPP_ORDER


def test_hrnet_w48_ocr_has_the_ocr_hooks_at_top_level() -> None:
    """HRNetW48OCR (official layout) on the meta device: names only, no 70 M-parameter compute."""
    import ocrviz
    with torch.device("meta"):
        model = ocrviz.create_model("hrnet_w48_ocr", num_classes=19).eval()
    _, cache = run_with_cache(model, torch.zeros(1, 3, 32, 32, device="meta"))
    assert cache.names() == [n.removeprefix("head.") for n in OCR_ORDER]
    assert cache.sim_map.shape == (1, 64, 19) and cache.feature_size == (8, 8)
