"""The OCR (object-contextual representations) head, official math and key names.

Read top to bottom, it is the seed's three steps:

1. ``SpatialGather``  (get_proxy): soft object regions -> region representations
2. ``ObjectAttentionBlock`` (sim map): every pixel attends to the K regions
3. ``ObjectAttentionBlock`` + ``SpatialOCR`` (context): the weighted region
   representations become the pixel's object context, concatenated with the
   pixel representation and fused.

Attribute names follow the official HRNet-OCR code (``aux_head``,
``conv3x3_ocr``, ``ocr_gather_head``, ``ocr_distri_head.object_context_block.
{f_pixel, f_object, f_down, f_up}``, ``ocr_distri_head.conv_bn_dropout``,
``cls_head``) so that official state dicts load key for key.  HookPoints hold
no parameters and therefore do not change the state-dict keys.

Shapes: B batch, C mid channels (512 official), Ck key channels (256 official),
K regions (= classes), h x w feature map, HW = h * w.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .hook_point import HookPoint


def _bn_relu(channels: int) -> nn.Sequential:
    # The official ModuleHelper.BNReLU: a nested Sequential, hence keys like
    # ``f_pixel.1.0.weight`` (BN inside the pair at index 1).
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU())


class SpatialGather(nn.Module):
    """Step 1, get_proxy: region representations from soft object regions.

    Softmax of ``scale * logits`` over the SPATIAL axis (each of the K maps sums
    to 1 over pixels), then a weighted sum of pixel features per region.
    No parameters.  Returns proxies laid out B x C x K x 1 (official layout).
    """

    def __init__(self, num_classes: int = 0, scale: float = 1.0) -> None:
        super().__init__()
        self.cls_num = num_classes
        self.scale = scale
        self.hook_region_weights = HookPoint()  # B x K x h x w, sums to 1 over pixels
        self.hook_proxies = HookPoint()         # B x C x K

    def forward(self, feats: torch.Tensor, region_logits: torch.Tensor) -> torch.Tensor:
        b, k, h, w = region_logits.shape
        probs = F.softmax(self.scale * region_logits.reshape(b, k, h * w), dim=2)  # B x K x HW
        probs = self.hook_region_weights(probs.reshape(b, k, h, w)).reshape(b, k, h * w)  # B x K x HW
        pixels = feats.reshape(b, feats.shape[1], h * w).permute(0, 2, 1)  # B x HW x C
        proxies = torch.matmul(probs, pixels).permute(0, 2, 1)  # B x C x K
        proxies = self.hook_proxies(proxies)                    # B x C x K
        return proxies.unsqueeze(3)                             # B x C x K x 1


class ObjectAttentionBlock(nn.Module):
    """Steps 2 and 3: pixel-region similarity map and the object context.

    query = f_pixel(X), key = f_object(proxy), value = f_down(proxy);
    sim_map = softmax_K(Ck^-0.5 * query @ key); context = f_up(sim_map @ value).
    All 1x1 convs are bias-free (official HRNet-OCR); f_up ends with ReLU, so
    the object context is non-negative.
    """

    def __init__(self, in_channels: int, key_channels: int, scale: int = 1) -> None:
        super().__init__()
        if scale != 1:
            raise ValueError(f"scale={scale} is not supported; only scale=1 (the official setting) is")
        self.scale = scale
        self.in_channels = in_channels
        self.key_channels = key_channels
        self.f_pixel = nn.Sequential(
            nn.Conv2d(in_channels, key_channels, 1, bias=False), _bn_relu(key_channels),
            nn.Conv2d(key_channels, key_channels, 1, bias=False), _bn_relu(key_channels),
        )
        self.f_object = nn.Sequential(
            nn.Conv2d(in_channels, key_channels, 1, bias=False), _bn_relu(key_channels),
            nn.Conv2d(key_channels, key_channels, 1, bias=False), _bn_relu(key_channels),
        )
        self.f_down = nn.Sequential(nn.Conv2d(in_channels, key_channels, 1, bias=False), _bn_relu(key_channels))
        self.f_up = nn.Sequential(nn.Conv2d(key_channels, in_channels, 1, bias=False), _bn_relu(in_channels))
        self.hook_query = HookPoint()           # B x HW x Ck
        self.hook_key = HookPoint()             # B x Ck x K
        self.hook_value = HookPoint()           # B x K x Ck
        self.hook_sim_map = HookPoint()         # B x HW x K, rows sum to 1 over K
        self.hook_context = HookPoint()         # B x Ck x h x w (before f_up)
        self.hook_object_context = HookPoint()  # B x C x h x w (after f_up)

    def forward(self, x: torch.Tensor, proxy: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        ck = self.key_channels
        query = self.f_pixel(x).reshape(b, ck, h * w).permute(0, 2, 1)  # B x HW x Ck
        query = self.hook_query(query)
        key = self.hook_key(self.f_object(proxy).reshape(b, ck, -1))      # B x Ck x K
        value = self.f_down(proxy).reshape(b, ck, -1).permute(0, 2, 1)    # B x K x Ck
        value = self.hook_value(value)
        sim_map = F.softmax((ck ** -0.5) * torch.matmul(query, key), dim=-1)  # B x HW x K
        sim_map = self.hook_sim_map(sim_map)
        context = torch.matmul(sim_map, value)                            # B x HW x Ck
        context = context.permute(0, 2, 1).reshape(b, ck, h, w)           # B x Ck x h x w
        context = self.hook_context(context)
        return self.hook_object_context(self.f_up(context))               # B x C x h x w


class SpatialOCR(nn.Module):
    """Object context + pixel representation -> augmented representation.

    ``conv_bn_dropout(cat([object_context, feats]))``: conv1x1 2C -> C (no bias),
    BN, ReLU, Dropout2d (0.05 in HRNet-OCR).
    """

    def __init__(self, in_channels: int, key_channels: int, out_channels: int,
                 scale: int = 1, dropout: float = 0.05) -> None:
        super().__init__()
        self.object_context_block = ObjectAttentionBlock(in_channels, key_channels, scale)
        self.conv_bn_dropout = nn.Sequential(
            nn.Conv2d(2 * in_channels, out_channels, 1, bias=False), _bn_relu(out_channels), nn.Dropout2d(dropout),
        )
        self.hook_augmented = HookPoint()  # B x C_out x h x w

    def forward(self, feats: torch.Tensor, proxy: torch.Tensor) -> torch.Tensor:
        context = self.object_context_block(feats, proxy)                    # B x C x h x w
        return self.hook_augmented(self.conv_bn_dropout(torch.cat([context, feats], 1)))


class OCRHead(nn.Module):
    """The whole OCR head of HRNet-OCR: feature map -> (aux logits, main logits).

    Both outputs stay at feature resolution; the model wrapper upsamples.

    Example::

        head = OCRHead(in_channels=48, num_classes=5, mid_channels=64, key_channels=32)
        aux, main = head(torch.randn(2, 48, 16, 24))   # both 2 x 5 x 16 x 24
    """

    def __init__(self, in_channels: int, num_classes: int, mid_channels: int = 512,
                 key_channels: int = 256, dropout: float = 0.05, aux_kernel_size: int = 1) -> None:
        super().__init__()
        self._add_ocr_layers(in_channels, num_classes, mid_channels, key_channels, dropout, aux_kernel_size)

    def _add_ocr_layers(self, in_channels: int, num_classes: int, mid_channels: int,
                        key_channels: int, dropout: float, aux_kernel_size: int) -> None:
        # Registration order = official state-dict order:
        # conv3x3_ocr, ocr_gather_head, ocr_distri_head, cls_head, aux_head.
        self.num_classes = num_classes
        self.conv3x3_ocr = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, 3, padding=1), nn.BatchNorm2d(mid_channels), nn.ReLU(),
        )
        self.ocr_gather_head = SpatialGather(num_classes)
        self.ocr_distri_head = SpatialOCR(mid_channels, key_channels, mid_channels, dropout=dropout)
        self.cls_head = nn.Conv2d(mid_channels, num_classes, 1)
        self.aux_head = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, aux_kernel_size, padding=aux_kernel_size // 2),
            nn.BatchNorm2d(in_channels), nn.ReLU(),
            nn.Conv2d(in_channels, num_classes, 1),
        )
        self.hook_soft_regions = HookPoint()  # B x K x h x w aux logits (no softmax)
        self.hook_pixel_feats = HookPoint()   # B x C x h x w
        self.hook_head_logits = HookPoint()   # B x K x h x w main logits at feature resolution

    def forward_ocr(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        aux = self.hook_soft_regions(self.aux_head(feats))          # B x K x h x w
        pixels = self.hook_pixel_feats(self.conv3x3_ocr(feats))     # B x C x h x w
        proxies = self.ocr_gather_head(pixels, aux)                 # B x C x K x 1
        augmented = self.ocr_distri_head(pixels, proxies)           # B x C x h x w
        main = self.hook_head_logits(self.cls_head(augmented))      # B x K x h x w
        return aux, main

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_ocr(feats)
