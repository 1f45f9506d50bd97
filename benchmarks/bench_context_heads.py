"""Context-head complexity, the OCR paper's table: PPM, ASPP, self-attention, OCR.

Input 1 x 2048 x 128 x 128 (a dilated ResNet-101 at stride 8), K = 19.
Parameters, FLOPs and peak activation memory are counted at full size on the
meta device (no arithmetic, so cheap); CPU time is measured on real tensors at
``--time-size`` (default 64 x 64; the full 128 x 128 needs 0.3-0.6 TFLOP per
forward per head).  Printed beside the paper's numbers (one P40 GPU).

    .venv/bin/python benchmarks/bench_context_heads.py [--time-size 64] [--repeats 5] [--threads N]
    .venv/bin/python benchmarks/bench_context_heads.py --quick        # time at 8 x 8, 2 repeats

What is counted (the context module only: no classifier, no auxiliary head):

* PPM (PSPNet): 4 bins (1, 2, 3, 6), each adaptive avg pool -> conv1x1
  2048 -> 512 (no bias) -> BN -> ReLU -> bilinear upsample; concat with the
  input (4096 ch) -> conv3x3 4096 -> 512 (no bias) -> BN -> ReLU.
* ASPP (DeepLabV3): ``ocrviz.models.aspp.ASPPHead(2048, 19, channels=256,
  rates=(12, 24, 36))`` with its classifier replaced by Identity: branches
  1x1, three dilated 3x3, image pooling, projection conv1x1 1280 -> 256.  No
  3x3 bottleneck conv after the projection: with one (torchvision's
  DeepLabHead) it would be 16.1 M / 511 GFLOPs, off the paper's 15.5 M / 492.
* Self-attention: conv3x3 2048 -> 512 (bias) -> BN -> ReLU, then a non-local
  block on 512 ch: theta, phi conv1x1 512 -> 256 (no bias) -> BN -> ReLU,
  g conv1x1 512 -> 256, softmax(256^-0.5 theta^T phi) over HW x HW, W conv1x1
  256 -> 512 -> BN, then (as OCNet / the OCR block) conv1x1 on cat(context,
  x) 1024 -> 512 -> BN -> ReLU.
* OCR: ``ocrviz.models.ocr.OCRHead(2048, 19)`` parts ``conv3x3_ocr`` (conv3x3
  2048 -> 512 -> BN -> ReLU), ``ocr_gather_head`` and ``ocr_distri_head`` (the
  object attention block and its conv1x1 1024 -> 512 fuse).  The soft object
  regions (B x 19 x h x w) are a given input, like the backbone features: the
  auxiliary head (4.24 M params, 137 GFLOPs at this size) and ``cls_head`` are
  not counted.  This matches the independent count: 10.6 M, 337.8 GFLOPs.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from common import (count_flops, count_params, fmt_ms, machine_line, md_table, median, peak_live_bytes,
                    set_threads, time_ms)
from ocrviz.models.aspp import ASPPHead
from ocrviz.models.ocr import OCRHead

IN_CHANNELS, NUM_CLASSES, FULL_SIZE = 2048, 19, 128

# The paper's table (input 1 x 2048 x 128 x 128, one P40): params, memory (MB), GFLOPs, time (ms).
PAPER = {
    "PPM": (23.1e6, 792, 619, 99),
    "ASPP": (15.5e6, 284, 492, 97),
    "DANet": (10.6e6, 2339, 1110, 121),
    "CC-Attention": (10.6e6, 427, 804, 131),
    "Self-Attention": (10.5e6, 2168, 619, 96),
    "Double Attention": (10.2e6, 209, 338, 46),
    "OCR": (10.5e6, 202, 340, 45),
}
BUILT = ("PPM", "ASPP", "Self-Attention", "OCR")


def _cbr(cin: int, cout: int, kernel: int = 1, bias: bool = False) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=bias), nn.BatchNorm2d(cout), nn.ReLU())


class PPM(nn.Module):
    """PSPNet pyramid pooling: B x Cin x h x w -> B x C x h x w."""

    def __init__(self, cin: int = IN_CHANNELS, channels: int = 512, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.stages = nn.ModuleList(nn.Sequential(nn.AdaptiveAvgPool2d(b), *_cbr(cin, channels)) for b in bins)
        self.bottleneck = _cbr(cin + len(bins) * channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pyramid = [F.interpolate(s(x), size=size, mode="bilinear", align_corners=True) for s in self.stages]
        return self.bottleneck(torch.cat([x, *pyramid], 1))                  # B x C x h x w


class ASPPContext(nn.Module):
    """ocrviz's ASPPHead (256 ch, rates 12/24/36) without its classifier: B x Cin x h x w -> B x 256 x h x w."""

    def __init__(self, cin: int = IN_CHANNELS) -> None:
        super().__init__()
        self.head = ASPPHead(cin, NUM_CLASSES, channels=256, rates=(12, 24, 36))
        self.head.classifier = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)[1]


class SelfAttention(nn.Module):
    """conv3x3 -> non-local block (key/value 256) -> fuse: B x Cin x h x w -> B x 512 x h x w."""

    def __init__(self, cin: int = IN_CHANNELS, channels: int = 512, key_channels: int = 256) -> None:
        super().__init__()
        self.key_channels = key_channels
        self.conv3x3 = _cbr(cin, channels, 3, bias=True)
        self.theta = _cbr(channels, key_channels)
        self.phi = _cbr(channels, key_channels)
        self.g = nn.Conv2d(channels, key_channels, 1, bias=False)
        self.W = nn.Sequential(nn.Conv2d(key_channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.fuse = _cbr(2 * channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3x3(x)                                                   # B x C x h x w
        b, _, h, w = x.shape
        ck = self.key_channels
        query = self.theta(x).reshape(b, ck, h * w).permute(0, 2, 1)          # B x HW x Ck
        key = self.phi(x).reshape(b, ck, h * w)                               # B x Ck x HW
        value = self.g(x).reshape(b, ck, h * w).permute(0, 2, 1)              # B x HW x Ck
        sim = F.softmax(ck ** -0.5 * torch.matmul(query, key), dim=-1)        # B x HW x HW
        context = torch.matmul(sim, value).permute(0, 2, 1).reshape(b, ck, h, w)  # B x Ck x h x w
        return self.fuse(torch.cat([self.W(context), x], 1))                  # B x C x h x w


class OCRContext(nn.Module):
    """OCRHead's conv3x3_ocr + gather + object attention + fuse; soft regions are an input."""

    def __init__(self, cin: int = IN_CHANNELS) -> None:
        super().__init__()
        self.head = OCRHead(cin, NUM_CLASSES)

    def counted(self) -> list[nn.Module]:
        return [self.head.conv3x3_ocr, self.head.ocr_gather_head, self.head.ocr_distri_head]

    def forward(self, x: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        pixels = self.head.conv3x3_ocr(x)                                     # B x C x h x w
        proxies = self.head.ocr_gather_head(pixels, regions)                  # B x C x K x 1
        return self.head.ocr_distri_head(pixels, proxies)                     # B x C x h x w


@dataclass
class Head:
    name: str
    module: nn.Module
    counted: list[nn.Module]
    needs_regions: bool = False

    def inputs(self, size: int, device: str) -> tuple[torch.Tensor, ...]:
        x = torch.randn(1, IN_CHANNELS, size, size, device=device)
        if not self.needs_regions:
            return (x,)
        return x, torch.randn(1, NUM_CLASSES, size, size, device=device)


def build_head(name: str, device: str = "meta") -> Head:
    """One head in eval mode on ``device`` ("meta": shapes only, instant at full size)."""
    if name not in BUILT:
        raise ValueError(f"unknown head {name!r}; built here: {', '.join(BUILT)}")
    with torch.device(device):
        module = {"PPM": PPM, "ASPP": ASPPContext, "Self-Attention": SelfAttention, "OCR": OCRContext}[name]()
    counted = module.counted() if isinstance(module, OCRContext) else [module]
    return Head(name, module.eval(), counted, needs_regions=isinstance(module, OCRContext))


def build_heads(device: str = "meta") -> list[Head]:
    """All four heads (PPM, ASPP, Self-Attention, OCR) in eval mode on ``device``."""
    return [build_head(name, device) for name in BUILT]


def complexity(head: Head, size: int = FULL_SIZE) -> tuple[int, int, int]:
    """(params, FLOPs, peak activation bytes) at size x size, counted on the meta device."""
    module = head.module
    if next(module.parameters()).device.type != "meta":
        raise ValueError("complexity() counts on the meta device; build the heads with build_heads('meta')")
    inputs = head.inputs(size, "meta")
    return (count_params(*head.counted), count_flops(lambda: module(*inputs)),
            peak_live_bytes(lambda: module(*inputs)))


def cpu_times_ms(names: tuple[str, ...], size: int, repeats: int) -> dict[str, float]:
    """Median CPU wall time (ms) of one eval forward at 1 x 2048 x size x size per head (real tensors).

    After one warm-up forward each, the heads take turns (round robin, order
    reversed every other round), so that drift on the machine hits all alike.
    """
    torch.manual_seed(0)
    heads = [build_head(name, "cpu") for name in names]
    inputs = [h.inputs(size, "cpu") for h in heads]
    times: dict[str, list[float]] = {name: [] for name in names}
    with torch.no_grad():
        for h, x in zip(heads, inputs):
            h.module(*x)
        for r in range(max(1, repeats)):
            order = list(zip(heads, inputs))
            for h, x in (order if r % 2 == 0 else order[::-1]):
                times[h.name].append(time_ms(lambda: h.module(*x)))
    return {name: median(ts) for name, ts in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-size", type=int, default=64, help="h = w of the timed input (default 64)")
    parser.add_argument("--repeats", type=int, default=5, help="timed forwards per head (default 5)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="time at 8 x 8 with 2 repeats (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.time_size, args.repeats = 8, 2
    set_threads(args.threads)

    heads = build_heads("meta")
    times = cpu_times_ms(BUILT, args.time_size, args.repeats)
    rows, ours = [], {}
    for head in heads:
        params, flops, mem = complexity(head)
        ms = times[head.name]
        ours[head.name] = (params, mem / 2**20, flops / 1e9, ms)
        pp, pm, pf, pt = PAPER[head.name]
        rows.append([head.name, f"{params / 1e6:.2f}M", f"{pp / 1e6:.1f}M", f"{mem / 2**20:.0f}", f"{pm}",
                     f"{flops / 1e9:.1f}", f"{pf}", fmt_ms(ms), f"{pt}"])
    ratio = [f"{o / a:.2f}" for o, a in zip(ours["OCR"], ours["ASPP"])]
    paper_ratio = [f"{o / a:.2f}" for o, a in zip(PAPER["OCR"], PAPER["ASPP"])]
    rows.append(["**OCR / ASPP**", ratio[0], paper_ratio[0], ratio[1], paper_ratio[1], ratio[2], paper_ratio[2],
                 ratio[3], paper_ratio[3]])

    print(f"## Context heads: complexity at 1 x {IN_CHANNELS} x {FULL_SIZE} x {FULL_SIZE}, K = {NUM_CLASSES}\n")
    print(f"Machine: {machine_line()}.  Params, GFLOPs (FlopCounterMode, 2 x multiply-adds of convs and "
          f"matmuls) and memory (peak bytes of live activations, input and weights excluded, MiB) are counted "
          f"at {FULL_SIZE} x {FULL_SIZE} on the meta device.  **CPU time is measured at "
          f"1 x {IN_CHANNELS} x {args.time_size} x {args.time_size}** (median of {args.repeats}, heads taking turns, eval, no_grad); "
          f"the paper's time is at {FULL_SIZE} x {FULL_SIZE} on a P40 GPU, so compare ratios, not "
          f"milliseconds.  Context module only: classifier and auxiliary head not counted (see the "
          f"script's docstring for each composition).\n")
    print(md_table(["head", "params", "paper params", "memory MiB", "paper memory", "GFLOPs", "paper GFLOPs",
                    f"CPU ms @{args.time_size}", f"paper ms @{FULL_SIZE}"], rows))
    missing = [n for n in PAPER if n not in BUILT]
    others = ", ".join(f"{n} {PAPER[n][0] / 1e6:.1f}M / {PAPER[n][2]} GFLOPs" for n in missing)
    print(f"\nNot rebuilt here (paper rows): {others}.")


if __name__ == "__main__":
    main()
