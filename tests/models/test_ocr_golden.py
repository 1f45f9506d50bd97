"""Our OCR modules reproduce the official HRNet-OCR golden tensors (reference/README.md).

Every stored intermediate is compared, read from our HookPoints with plain
``register_forward_hook`` (no dependency on ocrviz.capture).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hook_recorder import record_hooks as _record

from ocrviz.models.ocr import OCRHead, SpatialGather, SpatialOCR

ATOL, RTOL = 1e-5, 1e-4


@pytest.fixture(scope="module")
def golden(reference_dir):
    path = reference_dir / "ocr_module_golden.npz"
    assert path.is_file(), f"golden file missing: {path}"
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _state_dict(golden: dict, prefix: str) -> dict[str, torch.Tensor]:
    sd = {k[len(prefix):]: torch.from_numpy(np.array(v)) for k, v in golden.items() if k.startswith(prefix)}
    assert sd, f"no keys with prefix {prefix}"
    return sd


def _close(actual: torch.Tensor, expected: np.ndarray, what: str) -> None:
    assert tuple(actual.shape) == expected.shape, f"{what}: shape {tuple(actual.shape)} != {expected.shape}"
    np.testing.assert_allclose(actual.double().numpy(), expected.astype(np.float64), atol=ATOL, rtol=RTOL,
                               err_msg=what)


def _load_strict(module: torch.nn.Module, sd: dict[str, torch.Tensor]) -> None:
    result = module.load_state_dict(sd, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert set(module.state_dict()) == set(sd)
    for k, v in module.state_dict().items():          # really loaded, not just matched
        assert torch.equal(v, sd[k]), k


def test_meta_sizes(golden):
    meta = json.loads(str(golden["meta_json"]))
    assert (meta["B"], meta["C"], meta["key_channels"], meta["K"], meta["H"], meta["W"]) == (2, 64, 32, 5, 16, 24)
    assert meta["mode"] == "eval"


def test_part_a_gather_and_spatial_ocr(golden):
    gather = SpatialGather(num_classes=5).eval()
    ocr = SpatialOCR(in_channels=64, key_channels=32, out_channels=64, dropout=0.05).eval()
    _load_strict(ocr, _state_dict(golden, "A_sd."))
    assert list(gather.state_dict()) == []  # the gather has no parameters
    g_seen, o_seen = _record(gather), _record(ocr)

    feats = torch.from_numpy(golden["A_in_feats"])
    logits = torch.from_numpy(golden["A_in_region_logits"])
    with torch.no_grad():
        proxy = gather(feats, logits)
        out = ocr(feats, proxy)

    b, k, h, w = logits.shape
    _close(g_seen["hook_region_weights"].reshape(b, k, h * w), golden["A_region_softmax"], "region softmax")
    _close(proxy, golden["A_proxy"], "proxy (module output)")
    _close(g_seen["hook_proxies"].unsqueeze(3), golden["A_proxy"], "proxy (hook)")
    block = "object_context_block."
    _close(o_seen[block + "hook_query"], golden["A_query"], "query")
    _close(o_seen[block + "hook_key"], golden["A_key"], "key")
    _close(o_seen[block + "hook_value"], golden["A_value"], "value")
    _close(o_seen[block + "hook_sim_map"], golden["A_sim_map"], "sim_map")
    _close(o_seen[block + "hook_context"], golden["A_context_pre_fup"], "context before f_up")
    _close(o_seen[block + "hook_object_context"], golden["A_object_context"], "object context")
    _close(o_seen["hook_augmented"], golden["A_output"], "output (hook)")
    _close(out, golden["A_output"], "output (module)")


def test_part_b_whole_head(golden):
    head = OCRHead(in_channels=48, num_classes=5, mid_channels=64, key_channels=32).eval()
    _load_strict(head, _state_dict(golden, "B_sd."))
    seen = _record(head)
    with torch.no_grad():
        aux, main = head(torch.from_numpy(golden["B_in_feats"]))

    _close(aux, golden["B_out_aux"], "aux (first output)")
    _close(seen["hook_soft_regions"], golden["B_out_aux"], "soft regions hook")
    _close(seen["hook_pixel_feats"], golden["B_pixel_feats"], "pixel feats")
    _close(seen["ocr_gather_head.hook_proxies"].unsqueeze(3), golden["B_proxy"], "proxy")
    _close(seen["ocr_distri_head.object_context_block.hook_sim_map"], golden["B_sim_map"], "sim_map")
    _close(seen["ocr_distri_head.hook_augmented"], golden["B_augmented"], "augmented")
    _close(main, golden["B_out"], "main (second output)")
    _close(seen["hook_head_logits"], golden["B_out"], "head logits hook")


def test_state_dict_key_order_is_official(reference_dir):
    """Registration order = the official HRNet-OCR state-dict order (its manifest's OCR part)."""
    manifest = json.loads((reference_dir / "hrnet_w48_ocr_cityscapes_state_dict.json").read_text())
    ocr_prefixes = ("conv3x3_ocr.", "ocr_gather_head.", "ocr_distri_head.", "cls_head.", "aux_head.")
    official = [k for k, _ in manifest["state_dict"] if k.startswith(ocr_prefixes)]
    head = OCRHead(in_channels=48, num_classes=5, mid_channels=64, key_channels=32)
    assert len(official) > 50
    assert list(head.state_dict()) == official


def test_golden_detects_a_perturbation(golden):
    """The comparison has teeth: a 1e-2 change in one conv3x3_ocr weight breaks it."""
    head = OCRHead(in_channels=48, num_classes=5, mid_channels=64, key_channels=32).eval()
    sd = _state_dict(golden, "B_sd.")
    sd["conv3x3_ocr.0.weight"][0, 0, 0, 0] += 1e-2
    head.load_state_dict(sd)
    with torch.no_grad():
        _, main = head(torch.from_numpy(golden["B_in_feats"]))
    with pytest.raises(AssertionError):
        _close(main, golden["B_out"], "perturbed")
