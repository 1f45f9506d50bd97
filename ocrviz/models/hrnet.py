"""HRNetV2-W48 + OCR, laid out key for key like the official HRNet-OCR release.

Architecture (Wang et al., "Deep High-Resolution Representation Learning",
HRNetV2; Yuan et al., OCR, ECCV 2020), written from the published structure:

* stem: two 3x3 stride-2 convs (``conv1/bn1``, ``conv2/bn2``), 64 channels, 1/4;
* ``layer1``: 4 Bottlenecks 64 -> 256;
* ``transition1`` -> ``stage2`` (1 module, 2 branches) -> ``transition2`` ->
  ``stage3`` (4 modules, 3 branches) -> ``transition3`` -> ``stage4``
  (3 modules, 4 branches); branch widths w, 2w, 4w, 8w (w = 48) at 1/4, 1/8,
  1/16, 1/32; every module runs 4 BasicBlocks per branch, then fuses all
  branches into every branch (``fuse_layers``);
* all four branches upsampled to 1/4 and concatenated: 15w = 720 channels;
* the OCR head of :mod:`ocrviz.models.ocr` at top level (``conv3x3_ocr``,
  ``ocr_gather_head``, ``ocr_distri_head``, ``cls_head``, ``aux_head``).

``state_dict()`` equals the official manifest
(``shared/reference/hrnet_w48_ocr_cityscapes_state_dict.json``): 1890 entries,
70,372,678 parameters, so official checkpoints load with
:func:`ocrviz.load_checkpoint` (which strips their ``model.`` prefix).
Every resize (the fuse layers' upsampling, the stage-4 concatenation, the
final upsampling of the logits) is bilinear with the model's ``align_corners``:
``True`` by default (the official HRNet-OCR setting), ``False`` for weights
trained with MMSegmentation, which resizes that way everywhere
(:func:`ocrviz.from_checkpoint` sets it).  It is a constructor argument stored
on the model and on each ``HighResolutionModule``, never a module global.
Plain ``BatchNorm2d`` has the same keys as the official ``SyncBatchNorm``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .hook_point import HookPoint
from .ocr import OCRHead
from .segmodel import check_input  # the same input rules as SegModel

OFFICIAL_ALIGN_CORNERS = True  # the HRNet-OCR default; MMSeg uses False


def _resize(x: torch.Tensor, size: Sequence[int], align_corners: bool) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=align_corners)


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    """conv (no bias) -> BN [-> ReLU]; keys ``0.weight``, ``1.*``."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False),
                               nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity shortcut (channels unchanged)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + x)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 (x4 expansion); a 1x1 projection when widths differ."""

    expansion = 4

    def __init__(self, cin: int, planes: int) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.downsample = _conv_bn(cin, cout, 1, relu=False) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


def _fuse_path(channels: Sequence[int], src: int, dst: int) -> nn.Module:
    """How branch ``src`` reaches the resolution and width of branch ``dst``.

    Lower resolution (src > dst): 1x1 conv + BN, then (in forward) upsample.
    Same branch: identity.  Higher resolution (src < dst): ``dst - src`` 3x3
    stride-2 conv-BN steps; the intermediate ones keep the source width and
    end in ReLU, the last one maps to the target width without ReLU.
    """
    if src > dst:
        return _conv_bn(channels[src], channels[dst], 1, relu=False)
    if src == dst:
        return nn.Identity()
    steps = dst - src
    return nn.Sequential(*[
        _conv_bn(channels[src], channels[dst] if last else channels[src], 3, stride=2, relu=not last)
        for last in (k == steps - 1 for k in range(steps))
    ])


class HighResolutionModule(nn.Module):
    """Parallel branches of BasicBlocks, then every branch fused into every branch."""

    def __init__(self, channels: Sequence[int], blocks_per_branch: int = 4,
                 align_corners: bool = OFFICIAL_ALIGN_CORNERS) -> None:
        super().__init__()
        self.align_corners = align_corners
        self.branches = nn.ModuleList(
            nn.Sequential(*[BasicBlock(c) for _ in range(blocks_per_branch)]) for c in channels)
        n = len(channels)
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(_fuse_path(channels, src, dst) for src in range(n)) for dst in range(n))
        self.relu = nn.ReLU()

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        fused = []
        for dst, paths in enumerate(self.fuse_layers):
            y: torch.Tensor | int = 0
            for src, (path, x) in enumerate(zip(paths, xs)):
                moved = path(x)
                if src > dst:
                    moved = _resize(moved, xs[dst].shape[-2:], self.align_corners)
                y = y + moved
            fused.append(self.relu(y))
        return fused


def _transition(before: Sequence[int], after: Sequence[int]) -> nn.ModuleList:
    """Adapt the branches of one stage to the next; add the new lowest-resolution branch.

    Existing branches get a 3x3 conv-BN-ReLU when their width changes (else
    identity); the new branch is a 3x3 stride-2 conv-BN-ReLU from the previous
    lowest-resolution branch, nested once more (official key ``i.0.0.weight``).
    """
    layers: list[nn.Module] = []
    for i, cout in enumerate(after):
        if i < len(before):
            layers.append(_conv_bn(before[i], cout, 3) if before[i] != cout else nn.Identity())
        else:
            layers.append(nn.Sequential(_conv_bn(before[-1], cout, 3, stride=2)))
    return nn.ModuleList(layers)


def _run_transition(transition: nn.ModuleList, xs: list[torch.Tensor]) -> list[torch.Tensor]:
    # Branch i reads branch i of the previous stage; a new branch reads the last one.
    return [layer(xs[min(i, len(xs) - 1)]) for i, layer in enumerate(transition)]


class HRNetW48OCR(OCRHead):
    """HRNetV2 (width 48 by default) + OCR; output stride 4; official key layout.

    ``forward(x)`` takes B x 3 x H x W and returns main logits B x K x H x W
    (bilinear upsampling, ``align_corners`` as constructed), or ``(main, aux)`` with
    ``return_aux=True`` (both at input size).  At feature resolution
    (H/4 x W/4) they are visible through ``hook_head_logits`` and
    ``hook_soft_regions``; ``hook_features`` holds the 15w-channel concat.

    Example::

        model = HRNetW48OCR(num_classes=19).eval()       # 70.4M params
        logits = model(torch.randn(1, 3, 256, 512))      # 1 x 19 x 256 x 512
        small = HRNetW48OCR(num_classes=5, width=8, ocr_mid_channels=32, ocr_key_channels=16)
        mmseg_like = HRNetW48OCR(num_classes=19, width=18, align_corners=False)   # OCRNet-HR18

    ``aux_kernel_size=3`` gives the 3x3 first aux conv of openseg.pytorch's
    HRNet_W48_OCR (the HRNet-OCR release uses 1x1).  ``model_kwargs`` holds the
    constructor arguments (saved with the weights by ``save_checkpoint``).
    """

    arch = "hrnet_w48_ocr"
    output_stride = 4

    def __init__(self, num_classes: int = 19, width: int = 48, ocr_mid_channels: int = 512,
                 ocr_key_channels: int = 256, *, aux_kernel_size: int = 1,
                 align_corners: bool = OFFICIAL_ALIGN_CORNERS, class_names: list[str] | None = None,
                 palette: list[tuple[int, int, int]] | None = None) -> None:
        nn.Module.__init__(self)  # the OCR layers are added below, after the backbone
        if width < 1 or num_classes < 1:
            raise ValueError(f"width and num_classes must be positive, got width={width}, num_classes={num_classes}")
        widths = [width * 2 ** i for i in range(4)]           # 48, 96, 192, 384
        if aux_kernel_size not in (1, 3):
            raise ValueError(f"aux_kernel_size must be 1 (HRNet-OCR) or 3 (openseg), got {aux_kernel_size}")
        self.width = width
        self.align_corners = bool(align_corners)
        self.model_kwargs = {"width": width, "ocr_mid_channels": ocr_mid_channels,
                             "ocr_key_channels": ocr_key_channels, "aux_kernel_size": aux_kernel_size,
                             "align_corners": self.align_corners}
        self.feature_channels = sum(widths)                   # 720 for width 48
        self.class_names = class_names
        self.palette = palette

        # Stem: two stride-2 3x3 convs -> 64 channels at 1/4.
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.layer1 = nn.Sequential(Bottleneck(64, 64), *[Bottleneck(256, 64) for _ in range(3)])

        self.transition1 = _transition([256], widths[:2])
        ac = self.align_corners
        self.stage2 = nn.Sequential(HighResolutionModule(widths[:2], align_corners=ac))
        self.transition2 = _transition(widths[:2], widths[:3])
        self.stage3 = nn.Sequential(*[HighResolutionModule(widths[:3], align_corners=ac) for _ in range(4)])
        self.transition3 = _transition(widths[:3], widths)
        self.stage4 = nn.Sequential(*[HighResolutionModule(widths, align_corners=ac) for _ in range(3)])
        self.hook_features = HookPoint()  # B x 15w x H/4 x W/4

        # conv3x3_ocr, ocr_gather_head, ocr_distri_head, cls_head, aux_head (official order).
        self._add_ocr_layers(self.feature_channels, num_classes, ocr_mid_channels, ocr_key_channels, 0.05,
                             aux_kernel_size)
        self.hook_logits = HookPoint()    # B x K x H x W

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """B x 3 x H x W -> B x 15w x H/4 x W/4 (all branches upsampled and concatenated)."""
        x = self.relu(self.bn1(self.conv1(x)))         # B x 64 x H/2 x W/2
        x = self.relu(self.bn2(self.conv2(x)))         # B x 64 x H/4 x W/4
        x = self.layer1(x)                             # B x 256 x H/4 x W/4
        xs = self.stage2(_run_transition(self.transition1, [x]))
        xs = self.stage3(_run_transition(self.transition2, xs))
        xs = self.stage4(_run_transition(self.transition3, xs))
        size = xs[0].shape[-2:]
        feats = torch.cat([xs[0]] + [_resize(t, size, self.align_corners) for t in xs[1:]], 1)  # B x 15w x H/4 x W/4
        return self.hook_features(feats)

    def forward(self, x: torch.Tensor, return_aux: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        check_input(x, self.output_stride)
        aux, main = self.forward_ocr(self.forward_features(x))  # B x K x H/4 x W/4 each
        size = x.shape[-2:]
        main = self.hook_logits(_resize(main, size, self.align_corners))  # B x K x H x W
        if return_aux:
            return main, _resize(aux, size, self.align_corners)           # B x K x H x W each
        return main
