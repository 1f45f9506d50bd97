"""Gradient effective receptive field of one pixel's logit, via Captum.

For ASPP (and any model) the honest answer to "which input pixels did this
output use" is the gradient of the pixel's logit with respect to the input
(Luo et al. 2016, the effective receptive field).  Captum's ``Saliency``
computes ``|d logit / d input|``; we sum it over colour channels, pool it onto
the feature grid and normalise it to sum 1, so it is drawn on the same scale
as OCR's context map (also a distribution over feature cells).

Example::

    erf = gradient_erf(model, x, y=120, x=300)      # x: 1 x 3 x H x W
    erf.cells.shape, erf.cells.sum()                # (h, w), 1.0
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import Saliency


@dataclass(frozen=True)
class ERF:
    """``pixels``: H x W |gradient| summed over channels; ``cells``: h x w, sums to 1."""

    pixels: np.ndarray
    cells: np.ndarray
    target: int


def image_logits(model: torch.nn.Module, inp: torch.Tensor) -> torch.Tensor:
    """The model's main logits at the image's size, B x K x H x W: its output (a tensor, or the last of a
    list / tuple, as ``capture.outputs.main_logits``) resized bilinearly with the model's own
    ``align_corners`` when it predicts at feature resolution (an MMSeg segmentor in tensor mode)."""
    from ocrviz.capture.outputs import find_align_corners, main_logits, upsample_logits

    out = main_logits(model(inp))
    if tuple(out.shape[-2:]) == tuple(inp.shape[-2:]):
        return out
    return upsample_logits(out, tuple(inp.shape[-2:]), find_align_corners(model))


def gradient_erf(model: torch.nn.Module, image: torch.Tensor, y: int, x: int,
                 target: int | None = None, stride: int | None = None) -> ERF:
    """ERF of the logit at image pixel (y, x) for class ``target`` (default: the predicted class), pooled
    on cells of ``stride`` pixels (default: the model's ``output_stride``, else 8)."""
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"image has shape {tuple(image.shape)}; pass one image as 1 x 3 x H x W")
    _, _, height, width = image.shape
    if not (0 <= y < height and 0 <= x < width):
        raise ValueError(f"pixel (y={y}, x={x}) is outside the {height} x {width} image")
    stride = int(stride or getattr(model, "output_stride", 8))
    was_training = model.training
    model.eval()

    def logit_at_pixel(inp: torch.Tensor) -> torch.Tensor:
        return image_logits(model, inp)[:, :, y, x]                    # B x K

    if target is None:
        with torch.no_grad():
            target = int(logit_at_pixel(image).argmax(1))
    grad = Saliency(logit_at_pixel).attribute(image.detach().clone().requires_grad_(True), target=target, abs=True)  # 1 x 3 x H x W
    model.train(was_training)
    pixels = grad[0].sum(0)                                            # H x W
    return ERF(pixels=pixels.numpy(), cells=_cells(pixels, stride), target=target)


def _cells(pixels: torch.Tensor, stride: int) -> np.ndarray:
    """H x W |gradient| -> h x w shares of it (sum 1; uniform when the gradient is all zero)."""
    cells = F.avg_pool2d(pixels[None, None], stride, ceil_mode=True)[0, 0]  # h x w
    total = float(cells.sum())
    cells = cells / total if total > 0 else torch.full_like(cells, 1.0 / cells.numel())
    return cells.cpu().numpy()


class _GraphERF:
    """One forward with the graph kept, then one backward per asked cell.

    Per click this is a backward pass only: no forward to find the target (the
    predicted class is read from the kept output, with ``max(1).indices``) and
    none to rebuild the graph.  Equal to ``gradient_erf`` (Captum's Saliency),
    which the tests check.  The graph is built on the first call, so an
    explorer that never shows an ERF never pays for it.

    For an ocrviz ``SegModel`` two shortcuts give the same gradient for less work
    (1024 x 2048, shipped ASPP, 2 cores: 1.5-1.8x faster per click, A/B interleaved):

    * the backward starts at the head's feature-resolution logits, seeded with
      the bilinear (align_corners) weights of pixel (y, x): the gradient the
      upsampling's own backward hands them, bit for bit, without a dense
      K x H x W seed and a full-resolution upsample backward;
    * the head runs in channels_last during the graph forward (its input is
      converted by a pre-hook, removed after): oneDNN's dilated-convolution
      backward in that layout is about 6x faster than torch's contiguous
      fallback.  Round-off only (the same error against a float64 gradient as
      the contiguous graph's); the backbone stays as it is.  oneDNN builds its
      channels_last kernels once per process and shape (about 0.2 s on the
      first ERF), and the kept logits the target is read from differ from a
      contiguous forward's by round-off only.
    """

    def __init__(self, model: torch.nn.Module, image: torch.Tensor, pred: np.ndarray | None = None,
                 stride: int | None = None) -> None:
        self.model, self.image = model, image
        self.known = None if pred is None else np.asarray(pred)           # H x W: the classes shown
        self.stride = int(stride or getattr(model, "output_stride", 8))
        self.inp: torch.Tensor | None = None
        self.main: torch.Tensor | None = None                            # 1 x K x h x w, SegModels only

    def _build(self) -> None:
        was_training = self.model.training
        params = [p for p in self.model.parameters() if p.requires_grad]
        hooks = []
        caught: dict[str, torch.Tensor] = {}
        if _seg_model_upsampling(self.model):
            head = self.model.head
            hooks.append(head.register_forward_pre_hook(_to_channels_last))
            hooks.append(head.register_forward_hook(lambda mod, args, out: caught.__setitem__("main", out[1])))
        self.model.eval()
        try:
            # The graph records only the input's path: without parameter gradients to track, each
            # backward is about an eighth cheaper (measured at 1024 x 2048) and the graph smaller.
            for p in params:
                p.requires_grad_(False)
            inp = self.image.detach().clone().requires_grad_(True)
            with torch.enable_grad():
                out = image_logits(self.model, inp)                      # 1 x K x H x W, graph kept
        finally:
            for hook in hooks:
                hook.remove()
            for p in params:
                p.requires_grad_(True)
            self.model.train(was_training)
        # Set only once the forward has succeeded: a failed build (out of memory, a bad model) is
        # retried on the next call instead of leaving a half-built state behind.
        self.pred = out.detach().max(1).indices[0]                       # H x W
        self.size = tuple(out.shape[-2:])
        self.main = caught.get("main")
        self.out = None if self.main is not None else out                # the full-resolution graph otherwise
        self.inp = inp

    def __call__(self, y: int, x: int) -> np.ndarray:
        if self.inp is None:
            self._build()
        target = int(self.pred[y, x]) if self.known is None else int(self.known[y, x])
        if self.main is not None:
            seed = torch.zeros_like(self.main)                           # 1 x K x h x w
            (h, w), (height, width) = self.main.shape[-2:], self.size
            seed[0, target] = _upsample_weights(h, height, y)[:, None] * _upsample_weights(w, width, x)[None, :]
            (grad,) = torch.autograd.grad(self.main, self.inp, seed, retain_graph=True)
        else:
            (grad,) = torch.autograd.grad(self.out[0, target, y, x], self.inp, retain_graph=True)
        return _cells(grad[0].abs().sum(0), self.stride)                 # grad: 1 x 3 x H x W


def _seg_model_upsampling(model: torch.nn.Module) -> bool:
    """Whether ``model`` is an ocrviz SegModel whose logits are its head's main output upsampled
    bilinearly (align_corners) and nothing else: its own forward, no hook on the logits."""
    from torch.nn.modules import module as nn_module

    from ocrviz.models.segmodel import SegModel

    if not isinstance(model, SegModel) or type(model).forward is not SegModel.forward:
        return False
    hooks = (model.hook_logits._forward_hooks, model.hook_logits._forward_pre_hooks,
             nn_module._global_forward_hooks, nn_module._global_forward_pre_hooks)
    return not any(hooks)


def _to_channels_last(module: torch.nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: the head's input in channels_last (its gradient goes back to the
    backbone in that layout too: converting it back costs more than it saves, measured)."""
    x = args[0]
    if isinstance(x, torch.Tensor) and x.ndim == 4:
        return (x.contiguous(memory_format=torch.channels_last), *args[1:])
    return args


def _upsample_weights(n_in: int, n_out: int, pos: int) -> torch.Tensor:
    """n_in: how much output row/column ``pos`` of SegModel's bilinear (align_corners) upsampling
    from n_in to n_out takes from each input one, computed by that upsampling's own backward
    (on 1 x n_in, so cheap); the 2-D weights of a pixel are the outer product of its row's and
    its column's."""
    a = torch.zeros(1, 1, n_in, 1, requires_grad=True)
    with torch.enable_grad():
        up = F.interpolate(a, size=(n_out, 1), mode="bilinear", align_corners=True)
        (g,) = torch.autograd.grad(up[0, 0, pos, 0], a)
    return g[0, 0, :, 0]


def make_erf_fn(model: torch.nn.Module, image: torch.Tensor, pred: np.ndarray | None = None,
                stride: int | None = None) -> Callable[[int, int], np.ndarray]:
    """A callable ``(row, col) in feature cells -> h x w ERF`` for the explorer widget.

    The cell's centre pixel is used as the output position; its target is the
    class predicted there: ``pred[y, x]`` (H x W, the prediction the explorer
    shows) when given, else the kept forward's own argmax.  The forward graph of ``image`` is kept after the
    first call, so each further cell costs one backward pass.
    """
    stride = int(stride or getattr(model, "output_stride", 8))
    _, _, height, width = image.shape
    erf = _GraphERF(model, image, pred, stride)

    def erf_at_cell(row: int, col: int) -> np.ndarray:
        y = min(height - 1, row * stride + stride // 2)
        x = min(width - 1, col * stride + stride // 2)
        return erf(y, x)

    return erf_at_cell
