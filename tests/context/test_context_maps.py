"""ocrviz.context_maps: one ContextMap per context site, checked against independent computations.

OCR: the map must equal sum_k sim[p, k] * region_weights[k] computed here with
torch from the cached tensors (and from a float64 recomputation of the whole
attention from the block's state dict), on ocrviz's models, on the official
HRNet-OCR / openseg / MMSeg trees that tests/capture/test_foreign.py rebuilds
from their public structure, and on real MMSegmentation's OCRNet-HR18.
ASPP: the tap map must equal a plain loop over the nine taps of each dilated
branch with shares ||W_b b_b(p)|| computed here.  Every map keeps
weights.sum() + off_grid == 1.
"""
from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "capture"))
from capture_helpers import tiny_aspp, tiny_ocrnet  # noqa: E402
from test_foreign import (C_IN, CK, MMSEG_STEPS, OFFICIAL_STEPS, HRNetOCRHead, MMSegEncoderDecoder,  # noqa: E402
                          OpensegOCRNet, randomise_, reference)

import ocrviz  # noqa: E402
from ocrviz import context  # noqa: E402
from ocrviz.context import ContextMap, cell_of  # noqa: E402
from ocrviz.context.types import MASS_TOLERANCE  # noqa: E402
from random_bn import randomise_bn  # noqa: E402

pytestmark = pytest.mark.filterwarnings(               # MMSeg's and torch.jit's own notices
    "ignore::DeprecationWarning", "ignore:.*build_loss:UserWarning", "ignore:.*avg_non_ignore:UserWarning")

IMAGE_HW = (30, 45)          # through a stride-4, kernel-4 stem: a 7 x 11 grid (neither size divides)


class Stemmed(nn.Module):
    """image -> a strided stem -> the upstream tree (so that H x W is not the feature grid)."""

    def __init__(self, tree: nn.Module) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, C_IN, 4, stride=4)
        self.tree = tree

    def forward(self, x: torch.Tensor):
        return self.tree(self.stem(x))


def expected_cell(pixel: tuple[int, int], image_hw: tuple[int, int], grid: tuple[int, int]) -> tuple[int, int]:
    """The cell whose real-valued span [i H / h, (i + 1) H / h) holds the pixel: a search, not a formula."""
    out = []
    for p, n_px, n in zip(pixel, image_hw, grid):
        out.append(next(i for i in range(n) if Fraction(i * n_px, n) <= p < Fraction((i + 1) * n_px, n)))
    return tuple(out)


def independent_ocr(cache, sim_name: str, rw_name: str, b: int, cell: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    sim, rw = cache[sim_name][b].double(), cache[rw_name][b].double()       # HW x K, K x h x w
    row = sim[cell[0] * rw.shape[2] + cell[1]]                                # K
    return (row[:, None, None] * rw).sum(0), row                             # h x w, K


def pixels(image_hw: tuple[int, int]) -> list[tuple[int, int]]:
    H, W = image_hw
    return [(0, 0), (H - 1, W - 1), (H - 1, 0), (0, W - 1), (H // 2, W // 3), (H // 3 + 1, 2 * W // 3 + 1)]


def check_ocr_maps(cache, image_hw, sim_name, rw_name, batch: int, site: str) -> None:
    for b in range(batch):
        for px in pixels(image_hw):
            (m,) = ocrviz.context_maps(cache, px, batch_index=b)
            grid = tuple(cache[rw_name].shape[-2:])
            assert m.cell == expected_cell(px, image_hw, grid)
            want, row = independent_ocr(cache, sim_name, rw_name, b, m.cell)
            assert np.abs(m.weights - want.numpy()).max() <= 1e-5
            assert np.abs(m.source_weights - row.numpy()).max() <= 1e-7
            assert (m.kind, m.site, m.exact, m.convention, m.off_grid) == ("ocr", site, True, "", 0.0)
            assert abs(m.weights.sum() + m.off_grid - 1) <= 1e-5
            assert len(m.sources) == len(row)


# -- pixel -> cell --------------------------------------------------------------------------------
@pytest.mark.parametrize("image_hw, grid", [((30, 45), (7, 11)), ((37, 101), (5, 13)), ((64, 128), (16, 32)),
                                            ((9, 4), (9, 4)), ((100, 3), (13, 1))])
def test_cell_of_matches_the_cell_span_on_non_square_non_divisible_sizes(image_hw, grid) -> None:
    H, W = image_hw
    for y in range(H):
        for x in range(0, W, max(1, W // 17)):
            assert cell_of((y, x), image_hw, grid) == expected_cell((y, x), image_hw, grid)


def test_cell_of_refuses_pixels_outside_the_image() -> None:
    with pytest.raises(ValueError, match="outside the 30 x 45 input image"):
        cell_of((30, 0), (30, 45), (7, 11))
    with pytest.raises(ValueError, match="integer"):
        cell_of((1.5, 0), (30, 45), (7, 11))


# -- OCR on ocrviz's models ---------------------------------------------------------------------------
@pytest.mark.parametrize("stride", [8, 4])
def test_ocr_map_on_ocrviz_model_equals_sum_of_regions(stride) -> None:
    model = randomise_(ocrviz.create_model("ocrnet", num_classes=5, output_stride=stride, mid_channels=16,
                                           key_channels=8, widths=(8, 8, 16, 16)), seed=2)
    x = torch.randn(2, 3, 40, 56)
    _, cache = ocrviz.run_with_cache(model, x)
    assert cache.input_size == (40, 56)
    assert cache.sim_map.max() > 0.3                                       # not a near-uniform row
    blk = "head.ocr_distri_head.object_context_block"
    check_ocr_maps(cache, (40, 56), f"{blk}.hook_sim_map", "head.ocr_gather_head.hook_region_weights", 2, blk)


def test_ocr_map_on_ocrviz_hrnet_ocr_equals_sum_of_regions() -> None:
    from ocrviz.models.hrnet import HRNetW48OCR

    model = randomise_(HRNetW48OCR(num_classes=5, width=8, ocr_mid_channels=32, ocr_key_channels=16), seed=4)
    x = torch.randn(1, 3, 64, 96)
    _, cache = ocrviz.run_with_cache(model, x)
    assert cache.input_size == (64, 96) and cache.feature_size == (16, 24)
    (site,) = [s for _, s in context.find_sites(cache)]
    check_ocr_maps(cache, (64, 96), site.hooks["sim_map"], site.hooks["region_weights"], 1, site.path)


def test_ocr_sources_are_the_models_class_names() -> None:
    model = tiny_ocrnet()
    model.class_names = ["road", "car", "sky", "tree"]
    _, cache = ocrviz.run_with_cache(model, torch.randn(1, 3, 32, 48))
    (m,) = ocrviz.context_maps(cache, (5, 5))
    assert m.sources == ("road", "car", "sky", "tree")
    assert m.extra["spreads"].shape == (4, 4, 6)


# -- OCR on the foreign trees --------------------------------------------------------------------------
FOREIGN = {
    "official": (lambda: HRNetOCRHead(), "tree.ocr_gather_head", "tree.ocr_distri_head.object_context_block",
                 OFFICIAL_STEPS, CK),
    "openseg": (lambda: OpensegOCRNet(), "tree.spatial_context_head", "tree.spatial_ocr_head.object_context_block",
                OFFICIAL_STEPS, CK),
    "mmseg": (lambda: MMSegEncoderDecoder(), "tree.decode_head.1.spatial_gather_module",
              "tree.decode_head.1.object_context_block", MMSEG_STEPS, CK),
}


@pytest.mark.parametrize("tree", sorted(FOREIGN))
def test_ocr_map_on_foreign_trees_equals_sum_of_regions(tree) -> None:
    make, gather, block, steps, norm = FOREIGN[tree]
    model = randomise_(Stemmed(make()), seed=5)
    x = torch.randn(2, 3, *IMAGE_HW, generator=torch.Generator().manual_seed(7))
    _, cache = ocrviz.run_with_cache(model, x)
    assert cache.input_size == IMAGE_HW and cache.feature_size == (7, 11)
    check_ocr_maps(cache, IMAGE_HW, f"{block}.sim_map", f"{gather}.region_weights", 2, block)
    # and against the attention recomputed in float64 from the block's state dict
    ref = reference(model.get_submodule(block), steps, cache.pixel_feats, cache.soft_regions, norm)
    for b in range(2):
        for px in pixels(IMAGE_HW):
            (m,) = ocrviz.context_maps(cache, px, batch_index=b)
            p = m.cell[0] * 11 + m.cell[1]
            want = (ref["sim_map"][b, p][:, None, None] * ref["region_weights"][b]).sum(0)
            assert np.abs(m.weights - want.numpy()).max() <= 1e-5


def test_ocr_map_on_real_mmseg_ocrnet_hr18() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interop"))
    from mmseg_env import hr18_model_config, import_mmseg

    mmseg, MODELS, Config = import_mmseg()
    cfg, _ = hr18_model_config(mmseg, Config)
    torch.manual_seed(0)
    mm = randomise_bn(MODELS.build(cfg), 1, spread=0.1, conv_bias=True)
    x = torch.randn(1, 3, 64, 128)
    with ocrviz.capture(mm) as cache, torch.no_grad():
        mm(x, mode="tensor")
    assert cache.input_size == (64, 128)
    (site,) = [s for _, s in context.find_sites(cache)]
    assert site.kind == "ocr" and site.grid == (16, 32)
    assert (cache.sim_map.max(-1).values > 0.2).any()
    check_ocr_maps(cache, (64, 128), site.hooks["sim_map"], site.hooks["region_weights"], 1, site.path)


# -- ASPP ----------------------------------------------------------------------------------------------
def independent_taps(cache, model, b: int, cell: tuple[int, int]) -> tuple[np.ndarray, float, np.ndarray]:
    head = model.head
    h, w = cache.feature_size
    wt = head.project[0].weight.detach()[:, :, 0, 0].double()                             # C x 5C
    outs = [cache[f"head.hook_{n}"][b].double() for n in ("branch0", "branch1", "branch2", "branch3", "pool")]
    r, c = cell
    norms = torch.stack([torch.linalg.norm(wt[:, i * head.channels:(i + 1) * head.channels] @ o[:, r, c])
                         for i, o in enumerate(outs)])
    shares = (norms / norms.sum()).numpy()
    m, off = np.zeros((h, w)), 0.0
    m[r, c] += shares[0]
    for share, rate in zip(shares[1:4], head.rates):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                i, j = r + dy * rate, c + dx * rate
                if 0 <= i < h and 0 <= j < w:
                    m[i, j] += share / 9
                else:
                    off += share / 9
    m += shares[4] / (h * w)
    return m, off, shares


def test_aspp_map_is_taps_times_branch_shares_and_states_its_convention() -> None:
    model = randomise_bn(ocrviz.create_model("aspp", num_classes=4, channels=8, widths=(8, 8, 16, 16),
                                             rates=(1, 2, 3)), 3)
    x = torch.randn(2, 3, 40, 64)
    _, cache = ocrviz.run_with_cache(model, x)
    h, w = cache.feature_size
    for b in range(2):
        for px in pixels((40, 64)):
            (m,) = ocrviz.context_maps(cache, px, batch_index=b)
            assert m.cell == (px[0] // 8, px[1] // 8)
            want, off, shares = independent_taps(cache, model, b, m.cell)
            assert np.abs(m.weights - want).max() <= 1e-6 and abs(m.off_grid - off) <= 1e-6
            assert np.abs(m.source_weights - shares).max() <= 1e-6
            assert (m.kind, m.exact, m.site) == ("aspp", False, "head")
            assert "branch" in m.convention and "padding" in m.convention and "\n" not in m.convention
            assert m.sources == ("1x1", "rate 1", "rate 2", "rate 3", "image pool")
    (corner,) = ocrviz.context_maps(cache, (0, 0))
    assert corner.off_grid > 0.05                                        # taps on the padding are counted


def test_every_map_keeps_its_mass_and_sites_come_in_forward_order() -> None:
    class Both(nn.Module):
        def __init__(self, aspp_first: bool) -> None:
            super().__init__()
            self.ocr, self.aspp, self.aspp_first = tiny_ocrnet(), tiny_aspp(), aspp_first

        def forward(self, x):
            return [self.aspp(x), self.ocr(x)] if self.aspp_first else [self.ocr(x), self.aspp(x)]

    x = torch.randn(1, 3, 32, 48)
    for aspp_first, order in ((False, ["ocr", "aspp"]), (True, ["aspp", "ocr"])):
        _, cache = ocrviz.run_with_cache(Both(aspp_first).eval(), x)
        for y in range(0, 32, 3):
            for xx in range(0, 48, 5):
                maps = ocrviz.context_maps(cache, (y, xx))
                assert [m.kind for m in maps] == order
                for m in maps:
                    assert (m.weights >= 0).all() and abs(m.weights.sum() + m.off_grid - 1) <= 1e-6


def test_a_model_without_context_sites_gives_no_maps_and_a_cache_without_size_says_so() -> None:
    fcn = ocrviz.create_model("fcn", num_classes=3, widths=(8, 8, 16, 16)).eval()
    _, cache = ocrviz.run_with_cache(fcn, torch.randn(1, 3, 32, 32))
    assert ocrviz.context_maps(cache, (3, 3)) == []
    _, cache = ocrviz.run_with_cache(tiny_ocrnet(), torch.randn(1, 3, 32, 48))
    cache.input_size = None
    with pytest.raises(ValueError, match="image_hw"):
        ocrviz.context_maps(cache, (3, 3))
    assert ocrviz.context_maps(cache, (3, 3), image_hw=(32, 48))[0].cell == (0, 0)
    with pytest.raises(ValueError, match="batch of 1"):
        ocrviz.context_maps(cache, (3, 3), batch_index=1, image_hw=(32, 48))


def test_contextmap_refuses_a_map_that_does_not_sum_to_one_or_hides_its_convention() -> None:
    with pytest.raises(ValueError, match="must be 1"):
        ContextMap(np.full((2, 3), 0.1), 0.0, (0, 0), True, "", "s", "ocr")
    with pytest.raises(ValueError, match="convention"):
        ContextMap(np.full((2, 2), 0.25), 0.0, (0, 0), False, "", "s", "aspp")
    with pytest.raises(ValueError, match="off_grid"):
        ContextMap(np.full((2, 2), 0.3), -0.2, (0, 0), True, "", "s", "ocr")
    assert MASS_TOLERANCE <= 1e-4
