"""The ``dilated`` switch changes the receptive field, not the layout or the keys."""
from __future__ import annotations

import torch

from ocrviz.models.backbone import DilatedResNet


def _support(backbone: DilatedResNet) -> tuple[int, int]:
    """Rows and columns of input pixels that reach the centre feature cell."""
    x = torch.randn(1, 3, 256, 256, requires_grad=True)
    feats = backbone.eval()(x)                                       # 1 x C x 32 x 32
    feats[0, :, 16, 16].sum().backward()
    nz = (x.grad[0].abs().sum(0) > 0).nonzero()
    return int(nz[:, 0].max() - nz[:, 0].min() + 1), int(nz[:, 1].max() - nz[:, 1].min() + 1)


def test_undilated_backbone_sees_less_but_keeps_keys_and_stride() -> None:
    torch.manual_seed(0)
    wide, narrow = DilatedResNet(dilated=True), DilatedResNet(dilated=False)
    assert list(wide.state_dict()) == list(narrow.state_dict())
    assert narrow(torch.randn(1, 3, 64, 128)).shape[-2:] == (8, 16)
    assert _support(wide) == (191, 191)
    assert _support(narrow) == (111, 111)
