"""ocrviz.context.self_attention on an ocrviz-style head whose HookPoints hold q, k, v and the context.

The stand-in below has the HookPoint layout of ``ocrviz.models.self_attention``
(toyheads); the reference row is computed here from the module's own weights.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import ocrviz
from ocrviz.capture import CaptureMismatchError
from ocrviz.models.hook_point import HookPoint


class TinySA(nn.Module):
    def __init__(self, c: int = 8, ck: int = 4) -> None:
        super().__init__()
        self.scale = 1 / math.sqrt(ck)
        self.query, self.key, self.value = nn.Conv2d(c, ck, 1), nn.Conv2d(c, ck, 1), nn.Conv2d(c, c, 1)
        self.hook_query, self.hook_key, self.hook_value, self.hook_context = (HookPoint() for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.hook_query(self.query(x).flatten(2).transpose(1, 2))      # B x HW x Ck
        k = self.hook_key(self.key(x).flatten(2))                          # B x Ck x HW
        v = self.hook_value(self.value(x).flatten(2).transpose(1, 2))      # B x HW x C
        att = torch.softmax(torch.bmm(q, k) * self.scale, -1)              # B x HW x HW
        return self.hook_context(torch.bmm(att, v).transpose(1, 2).reshape(b, c, h, w))


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = TinySA()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


def test_hookpoint_head_map_is_the_exact_row() -> None:
    torch.manual_seed(0)
    model = Model().eval()
    with torch.no_grad():
        model.head.query.weight.mul_(4)
    x = torch.randn(2, 8, 6, 10)
    _, cache = ocrviz.run_with_cache(model, x)
    (m,) = ocrviz.context_maps(cache, (4, 7), batch_index=1)
    assert m.exact and m.kind == "self_attention" and m.site == "head" and m.grid == (6, 10)
    with torch.no_grad():
        q = model.head.query(x)[1].flatten(1).T.double()                   # HW x Ck
        k = model.head.key(x)[1].flatten(1).double()                       # Ck x HW
    row = torch.softmax(q[4 * 10 + 7] @ k / 2, 0).numpy()
    assert row.std() / row.mean() > 0.5
    np.testing.assert_allclose(m.weights.ravel(), row, atol=1e-6)
    assert abs(m.weights.sum() - 1) < 1e-9


def test_hookpoint_head_whose_context_disagrees_raises() -> None:
    torch.manual_seed(0)
    model = Model().eval()
    _, cache = ocrviz.run_with_cache(model, torch.randn(1, 8, 6, 10))
    cache["head.hook_context"][0, :, 2, 3] += 0.5                         # not what the factors give
    ocrviz.context_maps(cache, (0, 0))                                     # another cell still reads
    with pytest.raises(CaptureMismatchError, match="clicked pixel"):
        ocrviz.context_maps(cache, (2, 3))
