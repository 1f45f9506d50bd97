"""The explorer on OCRNets ocrviz did not write: official HRNet-OCR, openseg, MMSeg trees.

The trees are the ones tests/capture/test_foreign.py rebuilds from their public
structure, behind a strided stem so that they take an image and return what
their upstream returns (a list [aux, main], a tuple (aux, main), one tensor).
What the explorer shows is compared with an independent computation: the sim
map from the capture's own cross-checked recomputation, and the prediction from
the model's own output resized as upstream resizes.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "capture"))
from test_foreign import C_IN, K, HRNetOCRHead, MMSegEncoderDecoder, OpensegOCRNet, randomise_  # noqa: E402

from ocrviz import Explorer, capture  # noqa: E402

STRIDE = 4
IMAGE_HW = (32, 48)


class Stemmed(nn.Module):
    """image -> stride-4 feature map -> the upstream tree (output untouched)."""

    def __init__(self, tree: nn.Module) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, C_IN, STRIDE, stride=STRIDE)
        self.tree = tree

    def forward(self, x: torch.Tensor):
        return self.tree(self.stem(x))


class DictOut(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        aux, main = self.inner(x)
        return {"aux": aux, "out": main}


def _image(seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(*IMAGE_HW, 3), dtype=np.uint8)


TREES = {
    "official HRNet-OCR ([aux, main])": lambda: Stemmed(HRNetOCRHead()),
    "openseg ((aux, main))": lambda: Stemmed(OpensegOCRNet()),
    "MMSeg cascade (tensor)": lambda: Stemmed(MMSegEncoderDecoder()),
    "dict with 'out'": lambda: DictOut(Stemmed(HRNetOCRHead())),
}


@pytest.mark.parametrize("tree", list(TREES))
def test_explorer_opens_foreign_trees(tree: str) -> None:
    model = randomise_(TREES[tree](), seed=5)
    image = _image()
    mean, std = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)        # MMSeg's, in 0..255 units
    ex = Explorer(model, image, mean=mean, std=std, class_names=[f"c{k}" for k in range(K)])
    d = ex.data
    # independent: the same input, the model's own output, upsampled as MMSeg does (align_corners=False)
    x = torch.from_numpy(((image / 255 - np.array(mean) / 255) / (np.array(std) / 255)).astype(np.float32))
    x = x.permute(2, 0, 1)[None]
    with torch.no_grad(), capture(model) as cache:
        out = model(x)
    main = out["out"] if isinstance(out, dict) else out[-1] if isinstance(out, (list, tuple)) else out
    want_pred = F.interpolate(main, size=IMAGE_HW, mode="bilinear", align_corners=False).argmax(1)[0].numpy()
    assert d.output_stride == STRIDE and d.feat_hw == (IMAGE_HW[0] // STRIDE, IMAGE_HW[1] // STRIDE)
    np.testing.assert_array_equal(d.pred, want_pred)
    np.testing.assert_allclose(d.sim_map, cache.sim_map[0].numpy(), atol=5e-5)   # float32 vs float64 input
    np.testing.assert_allclose(d.sim_map.sum(1), 1, atol=1e-5)
    assert d.class_names == tuple(f"c{k}" for k in range(K))


def test_align_corners_and_logits_fn_are_used() -> None:
    model = randomise_(Stemmed(HRNetOCRHead()), seed=6)
    image = _image(4)
    ex = Explorer(model, image, align_corners=True, logits_fn=lambda out: out[0])   # the aux head, on purpose
    x = torch.from_numpy(np.ascontiguousarray(((image / 255 - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225))
                                              .astype(np.float32).transpose(2, 0, 1)))[None]
    with torch.no_grad():
        aux = model(x)[0]
    want = F.interpolate(aux, size=IMAGE_HW, mode="bilinear", align_corners=True).argmax(1)[0].numpy()
    np.testing.assert_array_equal(ex.data.pred, want)


def test_only_what_is_drawn_is_captured(monkeypatch) -> None:
    import ocrviz.widgets.explorer as explorer_module

    kept: list[str] = []
    real = explorer_module._run_drawn

    def spy(m, x, keep, *a):
        cache, logits = real(m, x, keep, *a)
        kept.extend(cache.names())
        return cache, logits

    monkeypatch.setattr(explorer_module, "_run_drawn", spy)
    Explorer(randomise_(Stemmed(HRNetOCRHead())), _image())
    # the sim map and region weights it draws, and the value / pixel features of counterfactual re-runs
    assert sorted(n.rsplit(".", 1)[-1] for n in kept) == ["pixel_feats", "region_weights", "sim_map", "value"], kept


def test_a_model_without_an_ocr_block_gets_a_clear_error() -> None:
    plain = nn.Sequential(nn.Conv2d(3, K, 3, padding=1))
    with pytest.raises(ValueError, match="no OCR block.*SpatialGather_Module.*aspp_model="):
        Explorer(plain, _image())


def test_bad_mean_std_is_refused() -> None:
    with pytest.raises(ValueError, match="three values each"):
        Explorer(randomise_(Stemmed(HRNetOCRHead())), _image(), mean=(0.5, 0.5), std=(0.2, 0.2, 0.2))


def test_device_is_checked_and_followed() -> None:
    model = randomise_(Stemmed(HRNetOCRHead()))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            Explorer(model, _image(), device="cuda")
    ex = Explorer(model, _image(), device="cpu")
    assert ex.data.sim_map.shape == (8 * 12, K)


class ObservedOnly(nn.Module):
    """official_tree.HighResolutionNet with the setting written into its calls only (no attribute, no
    global, as openseg writes it): found by watching the forward's bilinear resizes."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, C_IN // 2, 4, stride=4)
        self.down = nn.Conv2d(C_IN // 2, C_IN // 2, 3, stride=2, padding=1)
        self.ocr = HRNetOCRHead()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x0 = self.stem(x)
        x1 = F.interpolate(self.down(x0), size=x0.shape[-2:], mode="bilinear", align_corners=True)
        return self.ocr(torch.cat([x0, x1], 1))


@pytest.mark.parametrize("kind", ["module global ALIGN_CORNERS", "observed in the forward"])
def test_foreign_tree_is_upsampled_with_its_own_align_corners(kind: str, monkeypatch) -> None:
    """Official HRNet-OCR resizes with align_corners=True (config.MODEL.ALIGN_CORNERS) and carries no
    attribute: the explorer used False (agreement 0.949 on the real model); now 1.0."""
    sys.path.insert(0, str(Path(__file__).parent))
    import official_tree

    monkeypatch.setattr(official_tree, "ALIGN_CORNERS", None)             # restored after the test
    model = randomise_(official_tree.HighResolutionNet(True) if kind.startswith("module") else ObservedOnly(), seed=8)
    assert official_tree.ALIGN_CORNERS is (True if kind.startswith("module") else None)
    image = np.random.default_rng(9).integers(0, 256, size=(64, 88, 3), dtype=np.uint8)
    ex = Explorer(model, image)
    x = torch.from_numpy(np.ascontiguousarray(((image / 255 - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225))
                                              .astype(np.float32).transpose(2, 0, 1)))[None]
    with torch.no_grad():
        main = model(x)[-1]                                                  # 1 x K x 16 x 22
    own = F.interpolate(main, size=image.shape[:2], mode="bilinear", align_corners=True).argmax(1)[0].numpy()
    other = F.interpolate(main, size=image.shape[:2], mode="bilinear", align_corners=False).argmax(1)[0].numpy()
    assert (own != other).mean() > 0.01                                      # the setting matters here
    assert (ex.data.pred == own).mean() == 1.0


def test_module_global_false_is_followed_too(monkeypatch) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import official_tree
    from ocrviz.capture.outputs import find_align_corners

    monkeypatch.setattr(official_tree, "ALIGN_CORNERS", None)
    model = randomise_(official_tree.HighResolutionNet(False), seed=8)
    assert find_align_corners(model, default=True, observed=[True]) is False


def _sync_bn(model: nn.Module) -> nn.Module:
    return nn.SyncBatchNorm.convert_sync_batchnorm(model).eval()


@pytest.mark.parametrize("tree", ["official HRNet-OCR ([aux, main])", "MMSeg cascade (tensor)"])
def test_sync_batchnorm_trees_keep_their_counterfactuals(tree: str) -> None:
    """The official code builds SyncBatchNorm everywhere: counterfactuals used to switch off silently."""
    model = _sync_bn(randomise_(TREES[tree](), seed=5))
    assert any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    ex = Explorer(model, _image())
    assert ex.counterfactuals == "browser" and ex.data.pixel_head is not None, ex.unavailable
    assert "counterfactuals" not in ex.unavailable


def _is_plain_sentence(text: str) -> bool:
    return (text[:1].isupper() and text.endswith(".") and "\n" not in text
            and not any(s in text for s in ("()", "=", "[", "_", "None", "Error", "self.")))


def test_unavailable_panels_are_said_in_one_plain_sentence(tmp_path) -> None:
    model = randomise_(Stemmed(HRNetOCRHead()), seed=5)
    model.tree.ocr_distri_head.object_context_block.f_up[1][0] = nn.GroupNorm(2, 16)   # not foldable per pixel
    ex = Explorer(model, _image())
    assert ex.counterfactuals == "off"
    why = ex.unavailable["counterfactuals"]
    assert "GroupNorm" in why and _is_plain_sentence(why), why
    page = ex.save_html(tmp_path / "page.html").read_text()
    assert why in page                                                     # the page carries it too
    ok = Explorer(randomise_(Stemmed(HRNetOCRHead()), seed=5), _image(), counterfactuals="off")
    assert _is_plain_sentence(ok.unavailable["counterfactuals"])
    on = Explorer(randomise_(Stemmed(HRNetOCRHead()), seed=5), _image())
    assert on.unavailable == {}
    plain = Explorer.from_data(on.data.__class__(**{**{f: getattr(on.data, f) for f in
                                                       on.data.__dataclass_fields__}, "pixel_head": None}))
    assert _is_plain_sentence(plain.unavailable["counterfactuals"])
