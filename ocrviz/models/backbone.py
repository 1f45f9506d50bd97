"""A small dilated ResNet: the shared backbone of the toy OCRNet / ASPP / FCN models.

Sized to train on two CPU cores at 256 x 512: about 0.3 M parameters and
about 1.4 GFLOPs (0.69 G multiply-adds) per 256 x 512 image at output stride 8
(torch.utils.flop_counter); a batch-8 forward+backward took ~0.25-0.3 s on 2 cores.
Layout (ResNet-10: ResNet-18 with one BasicBlock per stage; BN and ReLU)::

    stem    conv3x3/2 (3 -> w0), conv3x3/2 (w0 -> w0)        stride 4
    layer1  BasicBlock(w0)                                   stride 4
    layer2  BasicBlock(w1), stride 2                         stride 8
    layer3  BasicBlock(w2), dilation 2 instead of stride 2   stride 8
    layer4  BasicBlock(w3), dilation 4 instead of stride 2   stride 8

At output stride 4, layer2 also trades its stride for dilation (2, 4, 8 for
layers 2-4): 5.1 instead of 1.4 GFLOPs per 256 x 512 image.  Replacing a
stride by a dilation keeps each layer's receptive field in input pixels the
same as in the strided network (191 px at both strides), which is what lets
a dilated backbone keep a fine feature map without going myopic.  The first
conv of a dilated stage uses the previous stage's dilation and the second the
new one (DeepLab's "contract dilation" idea applied per conv, since each stage
has a single block): it softens the gridding pattern of jumping straight to a
large dilation.

Shapes: B x 3 x H x W -> B x widths[-1] x H/s x W/s (s = output_stride; H, W
multiples of s).

Example::

    net = DilatedResNet(output_stride=8)
    net(torch.randn(2, 3, 64, 128)).shape      # 2 x 128 x 8 x 16
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

OUTPUT_STRIDES = (4, 8)
# (stride, dilation) of layer1..layer4 for each output stride.
_LAYOUT = {
    8: ((1, 1), (2, 1), (1, 2), (1, 4)),
    4: ((1, 1), (1, 2), (1, 4), (1, 8)),
}


def _conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    """ResNet BasicBlock: conv3x3-BN-ReLU, conv3x3-BN, + shortcut, ReLU.

    ``dilation=(d1, d2)`` sets the two convs' dilations (padding = dilation, so
    the spatial size only changes by ``stride``).
    """

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: tuple[int, int] = (1, 1)) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride, dilation[0])
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3x3(cout, cout, 1, dilation[1])
        self.bn2 = nn.BatchNorm2d(cout)
        # Two separate, non-inplace ReLUs: Captum's DeepLift / GuidedBackprop
        # hook ReLU modules and break on reused or in-place ones.
        self.relu1 = nn.ReLU()
        self.relu2 = nn.ReLU()
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + identity)


class DilatedResNet(nn.Module):
    """Dilated ResNet backbone, output stride 8 (default) or 4.

    Args:
        output_stride: 8 or 4; the feature map is H/s x W/s.
        widths: channels of layer1..layer4 (the stem uses ``widths[0]``);
            ``out_channels == widths[-1]``.
        in_channels: input image channels (3, RGB).
        dilated: ``False`` keeps the layout but sets every dilation to 1, which
            shrinks the receptive field (at stride 8: 111 px instead of 191 px).
            The shipped ToyCity models use it, so that a pixel's own features
            cannot see far and the *head* must bring the context: with the
            191 px field, the no-context FCN already resolved 98% of ToyCity's
            designed-ambiguous pixels and the heads had nothing to teach.

    Attributes: ``out_channels``, ``output_stride``, ``widths``, ``dilated``.
    """

    def __init__(self, output_stride: int = 8, widths: Sequence[int] = (16, 32, 64, 128),
                 in_channels: int = 3, dilated: bool = True) -> None:
        super().__init__()
        if output_stride not in _LAYOUT:
            raise ValueError(f"output_stride={output_stride!r} is not supported; choose one of "
                             f"{OUTPUT_STRIDES} (8: dilated layers 3-4, 4: dilated layers 2-4)")
        widths = tuple(int(c) for c in widths)
        if len(widths) != 4 or min(widths) < 1:
            raise ValueError(f"widths={widths!r} must be four positive channel counts, one per layer, "
                             f"e.g. (16, 32, 64, 128)")
        self.output_stride = output_stride
        self.dilated = bool(dilated)
        self.widths = widths
        self.out_channels = widths[-1]
        w0 = widths[0]
        self.stem = nn.Sequential(
            _conv3x3(in_channels, w0, stride=2), nn.BatchNorm2d(w0), nn.ReLU(),
            _conv3x3(w0, w0, stride=2), nn.BatchNorm2d(w0), nn.ReLU(),
        )
        cin, prev_dilation = w0, 1
        for i, ((stride, dilation), cout) in enumerate(zip(_LAYOUT[output_stride], widths), start=1):
            dilation = dilation if self.dilated else 1
            block = BasicBlock(cin, cout, stride, (prev_dilation, dilation))
            self.add_module(f"layer{i}", block)
            cin, prev_dilation = cout, dilation
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)       # B x w0 x H/4 x W/4
        x = self.layer1(x)     # B x w0 x H/4 x W/4
        x = self.layer2(x)     # B x w1 x H/s x W/s
        x = self.layer3(x)     # B x w2 x H/s x W/s
        return self.layer4(x)  # B x w3 x H/s x W/s
