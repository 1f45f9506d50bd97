"""Shared fixtures: where the reference data lives, deterministic torch."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("OCRVIZ_SHARED", REPO.parent / "shared"))

# One thread: the tests use tiny tensors, and two threads on a busy 2-core
# machine made small convs orders of magnitude slower (oversubscription).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    ref = SHARED / "reference"
    assert ref.is_dir(), f"reference data not found at {ref}; set OCRVIZ_SHARED to the folder holding reference/"
    return SHARED


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
