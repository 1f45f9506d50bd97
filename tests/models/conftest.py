"""tests/models: run single-threaded.

With two intra-op threads on a shared 2-core machine, every op waits for a
descheduled worker thread (measured: a 24 x 56 forward took 1.4 s instead of
3 ms).  These tests use tiny tensors, where one thread is also the fastest.
"""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
