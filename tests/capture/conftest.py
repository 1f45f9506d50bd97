"""Fixtures for the capture tests: tiny models, a small image batch."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from capture_helpers import tiny_aspp, tiny_ocrnet


@pytest.fixture
def ocr_model() -> nn.Module:
    return tiny_ocrnet()


@pytest.fixture
def aspp_model() -> nn.Module:
    return tiny_aspp()


@pytest.fixture
def image() -> torch.Tensor:
    return torch.randn(2, 3, 32, 48)   # feature map 4 x 6 at stride 8


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny tensors: one intra-op thread is faster, and with the 2 shared cores
    # busy a second OpenMP thread makes each conv ~1000x slower (barrier spin).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
