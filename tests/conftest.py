"""Shared fixtures: the reference data copied into tests/reference/, deterministic torch."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# The golden tensors and key manifests live in the repository (tests/reference/,
# provenance in its README): a clone with nothing beside it runs every test.
REFERENCE = REPO / "tests" / "reference"

# One thread: the tests use tiny tensors, and two threads on a busy 2-core
# machine made small convs orders of magnitude slower (oversubscription).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    assert (REFERENCE / "ocr_module_golden.npz").is_file(), f"reference data missing from {REFERENCE}"
    return REFERENCE


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
