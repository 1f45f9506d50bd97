"""MMSeg 1.2.2 context heads built from their own configs, with weights that make every map matter.

``build(name)`` reads ``configs/_base_/models/<name>.py`` from the installed
wheel, swaps SyncBN for BN, drops the pretrained backbone, and returns the
segmentor in eval mode.  MMSeg's own initialisation leaves the heads' context
inert (NonLocal2d's conv_out norm and the gammas of PAM / CC start at 0, and
theta / phi at std 0.01 give near-uniform rows), so ``liven`` draws random
weights that give peaked rows and let every branch reach the output.

``Spy`` wraps an upstream function (a module's ``F.softmax``, a NonLocal2d's
pairwise function) and records what the upstream code itself computed: the
tests compare ocrviz's maps with those tensors, never with ocrviz's own.
"""
from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmseg_env import bn_everywhere, import_mmseg
from random_bn import randomise_bn


def config(name: str) -> dict:
    """MMSeg's ``_base_/models/<name>.py`` model dict, BN for SyncBN, no pretrained weights."""
    mmseg, _, Config = import_mmseg()
    path = Path(mmseg.__file__).parent / ".mim" / "configs" / "_base_" / "models" / f"{name}.py"
    assert path.is_file(), f"the mmsegmentation wheel ships no {path}; reinstall mmsegmentation==1.2.2"
    model = Config.fromfile(str(path)).model.to_dict()
    model.pop("data_preprocessor", None)
    model.pop("pretrained", None)
    model["backbone"].pop("init_cfg", None)
    bn_everywhere(model)
    return model


def build(name: str, seed: int = 0, qk_gain: float = 6.0, **decode_overrides) -> nn.Module:
    """The segmentor of config ``name`` with random, lively weights, eval mode."""
    _, MODELS, _ = import_mmseg()
    cfg = config(name)
    cfg["decode_head"].update(decode_overrides)
    cfg.pop("auxiliary_head", None)      # not a context site; saves time
    torch.manual_seed(seed)
    model = MODELS.build(cfg)
    return liven(model, seed, qk_gain=qk_gain)


def build_segformer(seed: int = 9) -> nn.Module:
    """MMSeg's SegFormer MiT-B0 with peaked attention rows (MMSeg's trunc-normal init gives near-uniform ones)."""
    model = build("segformer_mit-b0")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.backbone.modules():
            if isinstance(m, nn.MultiheadAttention):
                m.in_proj_weight.normal_(0, 0.6, generator=g)
    return model


QK_WORDS = ("theta", "phi", "query", "key", "conv_mask")


def liven(model: nn.Module, seed: int = 0, gain: float = 1.5, qk_gain: float = 6.0) -> nn.Module:
    """Head convs N(0, gain^2 / fan_in) (query / key projections qk_gain: peaked rows), every Scale
    (gamma) 0.7, random BN; eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for path, m in model.decode_head.named_modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                k = qk_gain if any(w in path for w in QK_WORDS) else gain
                m.weight.normal_(0, k / fan_in ** 0.5, generator=g)
                if m.bias is not None:
                    m.bias.normal_(0, 0.1, generator=g)
            if type(m).__name__ == "Scale":
                m.scale.fill_(0.7)
    randomise_bn(model, seed, spread=0.1)
    with torch.no_grad():                   # BN after a query / key conv (ANN) would undo its gain
        for path, m in model.decode_head.named_modules():
            if isinstance(m, nn.BatchNorm2d) and any(w in path for w in QK_WORDS):
                m.weight.mul_(qk_gain / 2)
    return model


class Spy:
    """Wraps ``fn``; ``outputs`` holds what every call returned (detached)."""

    def __init__(self, fn) -> None:
        self.fn, self.outputs = fn, []

    def __call__(self, *args, **kwargs):
        out = self.fn(*args, **kwargs)
        self.outputs.append(out.detach().clone())
        return out


def spy_softmax(monkeypatch, module) -> Spy:
    """Record every ``F.softmax`` the upstream ``module`` (a Python module) calls."""
    spy = Spy(torch.nn.functional.softmax)
    fake = types.SimpleNamespace(**{k: getattr(module.F, k) for k in dir(module.F) if not k.startswith("__")})
    fake.softmax = spy
    monkeypatch.setattr(module, "F", fake)
    return spy


def hooks_left(model: nn.Module) -> list[str]:
    """'<module path>.<hook dict>' for every hook still registered on ``model`` (or globally)."""
    dicts = ("_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs",
             "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called", "_backward_hooks")
    left = [f"{n or '<model>'}.{d}" for n, m in model.named_modules() for d in dicts if getattr(m, d, None)]
    glob = torch.nn.modules.module
    return left + [g for g in ("_global_forward_hooks", "_global_forward_pre_hooks") if getattr(glob, g, None)]


# -- shared by the test files -------------------------------------------------------------------
IMAGE = (1, 3, 64, 96)          # an 8 x 12 grid at output stride 8 (h != w catches transposes)
PIXELS = ((0, 0), (30, 50), (63, 95), (41, 7))


def image(seed: int = 0) -> torch.Tensor:
    return torch.randn(*IMAGE, generator=torch.Generator().manual_seed(seed))


def cell(pixel, grid):
    return pixel[0] * grid[0] // IMAGE[2], pixel[1] * grid[1] // IMAGE[3]


def check_mass(m) -> None:
    assert abs(m.weights.sum() + m.off_grid - 1) < 1e-6
    assert (m.weights >= 0).all()


def peaked(row: np.ndarray) -> None:
    # A near-uniform row would let a wrong index pass: the weights must matter.
    cv = row.std() / row.mean()                      # coefficient of variation; 0 for a uniform row
    assert cv > 0.5, f"row too flat for a meaningful comparison (std / mean {cv:.3f}, max {row.max():.4f})"
