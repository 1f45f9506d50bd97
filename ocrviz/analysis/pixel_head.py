"""OCR's head after the sim map, folded into per-pixel matrices the browser can run.

After the similarity map, OCR's head is per pixel (all 1x1 layers; in eval
mode BatchNorm is an affine map and Dropout2d is the identity):

    context   = sim_row @ value                          # Ck
    object_cx = relu(A_up @ context + b_up)              # C   f_up: conv + BN + ReLU
    augmented = relu(A_fuse @ [object_cx; pixel] + b_fuse)   # C   conv_bn_dropout
    logits    = W_cls @ augmented + b_cls                # K   cls_head

``PixelHead`` holds exactly those arrays (any eval-mode BatchNorm, SyncBatchNorm
included, folded into the conv before it; MMSeg's ConvModules alike)
so that an edited sim row can be re-run for one pixel without a kernel, in
the explorer's JS or here in numpy (``logits``).  The head is found by
``ocr_parts.ocr_parts`` (ocrviz's OCR models, HRNet-OCR, official-layout,
openseg and MMSeg trees); other trees give None, and ``explain_pixel_head``
says why in one plain sentence (the explorer shows it).

Example::

    ph = pixel_head(model, cache)              # cache from run_with_cache(model, x)
    ph.logits(row, p)                          # K logits of feature cell p for sim row `row`
    ph.logits_rows(rows, p)                    # N x K: N sim rows of the same cell at once
    ph.predict_all(rows)                       # HW classes, every cell with its own row (torch, chunked)
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .ocr_parts import ocr_parts


@dataclass(frozen=True)
class PixelHead:
    """Shapes: K regions/classes, C mid channels, Ck key channels, HW feature cells."""

    value: np.ndarray    # K x Ck   f_down(proxies), the region values
    pixels: np.ndarray   # HW x C   conv3x3_ocr output, the pixel representations (float32, as captured)
    up_w: np.ndarray     # C x Ck
    up_b: np.ndarray     # C
    fuse_w: np.ndarray   # C x 2C   (object context first, then the pixel, as torch.cat([context, feats]))
    fuse_b: np.ndarray   # C
    cls_w: np.ndarray    # K x C
    cls_b: np.ndarray    # K

    def logits(self, sim_row: np.ndarray, p: int) -> np.ndarray:
        """K head logits of cell p (row-major index) when its sim row is ``sim_row`` (K, sums to 1)."""
        context = np.asarray(sim_row, np.float64) @ self.value                      # Ck
        obj = np.maximum(self.up_w @ context + self.up_b, 0)                      # C
        aug = np.maximum(self.fuse_w @ np.concatenate([obj, self.pixels[p]]) + self.fuse_b, 0)  # C
        return self.cls_w @ aug + self.cls_b                                       # K

    def logits_rows(self, rows: np.ndarray, p: int) -> np.ndarray:
        """N x K head logits of cell p for N sim rows (N x K) at once; ``logits`` row by row."""
        rows = np.asarray(rows, np.float64).reshape(-1, self.value.shape[0])          # N x K
        c = self.up_b.shape[0]
        obj = np.maximum(rows @ self.value @ self.up_w.T + self.up_b, 0)                # N x C
        pix = self.fuse_w[:, c:] @ self.pixels[p].astype(np.float64) + self.fuse_b      # C
        aug = np.maximum(obj @ self.fuse_w[:, :c].T + pix, 0)                           # N x C
        return aug @ self.cls_w.T + self.cls_b                                          # N x K

    def _torch(self, device: Any) -> dict[str, torch.Tensor]:
        c = self.up_b.shape[0]
        f = lambda a: torch.from_numpy(np.array(a, np.float32)).to(device)  # noqa: E731  (a writable copy)
        # f_up's conv (before its ReLU) is linear in the context, which is linear in the row: fold
        # value and the conv into one K x C map (associativity: 10k instead of 131k multiply-adds a cell)
        return {"value_up": f(self.value @ self.up_w.T), "up_b": f(self.up_b), "cls_w": f(self.cls_w),
                "cls_b": f(self.cls_b), "fuse_obj": f(self.fuse_w[:, :c]), "fuse_pix": f(self.fuse_w[:, c:]),
                "fuse_b": f(self.fuse_b)}

    def _pixels(self) -> torch.Tensor:
        with warnings.catch_warnings():     # the (read-only) features are only read, never written
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return torch.from_numpy(self.pixels)                                           # HW x C

    def pixel_part(self, chunk: int = 8192, device: Any = "cpu") -> torch.Tensor:
        """HW x C float32 on ``device``: the fuse conv's bias plus its pixel half, for every cell: the part
        of the head that no edit of the sim row changes (``predict_all(pixel_part=)`` reuses it)."""
        t, pix_all = self._torch(device), self._pixels()
        out = torch.empty(pix_all.shape, dtype=torch.float32, device=device)
        with torch.no_grad():
            for i in range(0, pix_all.shape[0], chunk):
                out[i:i + chunk] = torch.addmm(t["fuse_b"], pix_all[i:i + chunk].to(device), t["fuse_pix"].T)
        return out

    def predict_all(self, rows: np.ndarray, chunk: int = 8192, device: Any = "cpu",
                    pixel_part: torch.Tensor | None = None) -> np.ndarray:
        """HW predicted classes (uint8) when cell p's sim row is ``rows[p]`` (HW x K), in float32
        torch on ``device``, ``chunk`` cells at a time (memory: chunk x C floats, never HW x C x 2).
        ``pixel_part``: ``self.pixel_part(device=device)``, when the caller keeps it for many edits
        (half the work of each)."""
        t = self._torch(device)
        r_all = torch.from_numpy(np.array(rows, np.float32)).to(device)                   # HW x K
        pix_all = self._pixels()
        out = np.empty(r_all.shape[0], np.uint8)
        with torch.no_grad():
            for i in range(0, r_all.shape[0], chunk):
                r = r_all[i:i + chunk]                                                     # n x K
                if pixel_part is None:
                    part = torch.addmm(t["fuse_b"], pix_all[i:i + chunk].to(device), t["fuse_pix"].T)  # n x C
                else:
                    part = pixel_part[i:i + chunk]
                obj = torch.relu(torch.addmm(t["up_b"], r, t["value_up"]))                 # n x C
                aug = torch.relu(torch.addmm(part, obj, t["fuse_obj"].T))                  # n x C
                out[i:i + chunk] = torch.addmm(t["cls_b"], aug, t["cls_w"].T).max(1).indices.cpu().numpy()  # n
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class Unavailable(ValueError):
    """Why a model's head cannot be folded per pixel: one plain sentence, shown by the explorer."""


_IDENTITY_IN_EVAL = (nn.modules.dropout._DropoutNd, nn.Dropout, nn.Identity)


def _leaves(module: nn.Module) -> list[nn.Module]:
    """The modules that compute, in forward order (ConvModule: conv, norm, activation in ``order``)."""
    order = getattr(module, "order", None)
    if order is not None and tuple(order) != ("conv", "norm", "act"):
        raise Unavailable(f"the {type(module).__name__} runs its layers in the order {', '.join(order)}, "
                          f"not convolution, normalisation, activation")
    return [m for m in module.modules() if not any(True for _ in m.children())]


def _conv_bn_relu(part: nn.Module, what: str) -> tuple[np.ndarray, np.ndarray]:
    """A 1x1 conv, any eval-mode BatchNorm (BatchNorm2d, SyncBatchNorm, ...), a ReLU, then only layers that
    are the identity in eval mode -> (A, b) with relu(BN(conv(x))) = relu(A x + b).

    Accepts official ``Sequential(conv, Sequential(BN, ReLU))``, ``Sequential(conv, BN, ReLU, Dropout2d)``
    and MMSeg's ``ConvModule`` (conv, bn, activate); anything else raises ``Unavailable`` saying why."""
    layers = [m for m in _leaves(part) if not isinstance(m, _IDENTITY_IN_EVAL)]
    names = ", ".join(type(m).__name__ for m in layers) or "nothing"
    if len(layers) != 3:
        raise Unavailable(f"the {what} is {names}, not a 1x1 convolution, a BatchNorm and a ReLU")
    conv, bn, act = layers
    if not isinstance(conv, nn.Conv2d) or conv.kernel_size != (1, 1) or conv.groups != 1:
        size = "x".join(str(v) for v in getattr(conv, "kernel_size", ()))
        raise Unavailable(f"the {what} starts with a {size + ' ' if size else ''}{type(conv).__name__}"
                          f"{' in groups' if getattr(conv, 'groups', 1) != 1 else ''}, not a plain 1x1 convolution")
    if not isinstance(bn, nn.modules.batchnorm._BatchNorm) or bn.running_mean is None:
        raise Unavailable(f"the {what} normalises with {type(bn).__name__}, not a BatchNorm with running "
                          f"statistics, so it is not an affine map per pixel")
    if not isinstance(act, nn.ReLU):
        raise Unavailable(f"the {what} ends in {type(act).__name__}, not a ReLU")
    w = conv.weight.detach().double()[:, :, 0, 0].cpu().numpy()                           # Cout x Cin
    b0 = np.zeros(w.shape[0]) if conv.bias is None else conv.bias.detach().double().cpu().numpy()
    var, mean = bn.running_var.detach().double(), bn.running_mean.detach().double()
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(var)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(var)
    g = (gamma / (var + bn.eps).sqrt()).cpu().numpy()
    return g[:, None] * w, g * (b0 - mean.cpu().numpy()) + beta.cpu().numpy()


def explain_pixel_head(model: Any, cache: Any, batch_index: int = 0) -> PixelHead:
    """``pixel_head``, or ``Unavailable`` with one plain sentence saying why the head cannot be folded."""
    try:
        parts = ocr_parts(model)
    except ValueError:
        raise Unavailable("Counterfactuals are off: ocrviz re-runs the OCR heads of its own OCRNets, HRNet-OCR, "
                          "openseg's SpatialOCRNet and MMSeg's OCRHead, and this model has none of them.") from None
    if not parts.per_pixel:
        raise Unavailable("Counterfactuals are off: this model's layers after the similarity map are not all "
                          "1x1, so a pixel cannot be re-run on its own.")
    if not isinstance(parts.cls, nn.Conv2d) or parts.cls.kernel_size != (1, 1):
        raise Unavailable(f"Counterfactuals are off: this model's classifier is a {type(parts.cls).__name__}, "
                          f"not a 1x1 convolution.")
    if not (cache.has("value") and cache.has("pixel_feats")):
        raise Unavailable("Counterfactuals are off: the capture holds no region values or pixel features.")
    try:
        up_w, up_b = _conv_bn_relu(parts.up, "up projection after the context")
        fuse_w, fuse_b = _conv_bn_relu(parts.fuse, "fuse layer")
    except Unavailable as e:
        raise Unavailable(f"Counterfactuals are off: {e}.") from None
    b = batch_index
    cls = parts.cls
    value = cache.value[b].detach().double().cpu().numpy()                                 # K x Ck
    feats = cache.pixel_feats[b].detach().float()                                    # C x h x w
    pixels = feats.reshape(feats.shape[0], -1).T.contiguous().cpu().numpy()                # HW x C (float32)
    cls_w = cls.weight.detach().double()[:, :, 0, 0].cpu().numpy()                          # K x C
    cls_b = np.zeros(cls_w.shape[0]) if cls.bias is None else cls.bias.detach().double().cpu().numpy()
    return PixelHead(value=value, pixels=pixels, up_w=up_w, up_b=up_b, fuse_w=fuse_w, fuse_b=fuse_b,
                     cls_w=cls_w, cls_b=cls_b)


def pixel_head(model: Any, cache: Any, batch_index: int = 0) -> PixelHead | None:
    """The folded per-pixel head of ``model`` with the values and pixel features of ``cache``;
    None when ``counterfactual.ocr_parts`` finds no supported head, the head is not per pixel, or
    the cache lacks value / pixel_feats (``explain_pixel_head`` says which)."""
    try:
        return explain_pixel_head(model, cache, batch_index)
    except Unavailable:
        return None
