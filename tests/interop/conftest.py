"""MMSeg context-head models for the interop tests (built once per session: each takes a few seconds)."""
from __future__ import annotations

import pytest
import torch

from mmseg_heads import build, build_segformer


@pytest.fixture(scope="session")
def nl_model():
    return build("nonlocal_r50-d8")


@pytest.fixture(scope="session")
def da_model():
    return build("danet_r50-d8")


@pytest.fixture(scope="session")
def cc_model():
    return build("ccnet_r50-d8")


@pytest.fixture(scope="session")
def dnl_model():
    return build("dnl_r50-d8")


@pytest.fixture(scope="session")
def segformer_model():
    return build_segformer()


@pytest.fixture(scope="session")
def psp_model():
    return build("pspnet_r50-d8")


@pytest.fixture(scope="session")
def gc_model():
    return build("gcnet_r50-d8")


@pytest.fixture(scope="session")
def ann_model():
    return build("ann_r50-d8")


@pytest.fixture(scope="session")
def isa_model():
    return build("isanet_r50-d8", qk_gain=2.0, down_factor=(3, 5))   # 8 x 12 grid -> padded 9 x 15: padding and h != w


@pytest.fixture(scope="session")
def ema_model():
    model = build("emanet_r50-d8")
    with torch.no_grad():                       # larger features: responsibilities far from uniform
        model.decode_head.ema_mid_conv.conv.weight.mul_(8)
    return model
