"""Find the modules of an OCR head that run after the soft regions, in any supported layout.

Every analysis that re-runs OCR's head from a cache (``rerun_head``,
``region_influence``, ``attention_report``, ``error_blame``, the folded
``pixel_head`` of counterfactuals) needs the same six pieces, whatever the
tree calls them:

==============  =====================================  =====================================
piece           official HRNet-OCR / ocrviz / openseg   MMSegmentation ``OCRHead``
==============  =====================================  =====================================
key projection  ``object_context_block.f_object``      ``object_context_block.key_project``
value proj.     ``object_context_block.f_down``        ``object_context_block.value_project``
up projection   ``object_context_block.f_up``          ``object_context_block.out_project``
fuse            ``<ocr module>.conv_bn_dropout``       ``object_context_block.bottleneck``
classifier      ``cls_head`` (openseg: ``head``)       ``conv_seg`` (after ``dropout``)
sim-map scale   ``key_channels ** -0.5``               ``channels ** -0.5`` if ``matmul_norm``
==============  =====================================  =====================================

In both the fuse sees ``cat([object_context, pixel_feats])`` (context first)
and the pixel features are the gather's ``feats`` input, so one re-run serves
all layouts.  Found by attribute names only (no registry); anything else gets
a ValueError that says what was looked for.

Example::

    parts = ocr_parts(model)          # model: ocrviz OCRNet, HRNet-OCR, openseg SpatialOCRNet, MMSeg OCRNet
    parts.layout, parts.key_channels  # ('mmseg', 256)
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

SUPPORTED = ("ocrviz OCR models (create_model('ocrnet'), load_model('toycity-ocr'); head at model.head)",
             "ocrviz HRNetW48OCR (create_model('hrnet_w48_ocr'), any width; head at top level)",
             "official HRNet-OCR and openseg.pytorch SpatialOCRNet trees (foreign capture)",
             "MMSegmentation OCRHead (decode_head, or decode_head[i] of a CascadeEncoderDecoder)")
_LAYOUTS = ("ocr_distri_head.object_context_block.{f_object, f_down, f_up}, ocr_distri_head.conv_bn_dropout, "
            "cls_head (openseg: spatial_ocr_head ..., head); or MMSeg's object_context_block.{key_project, "
            "value_project, out_project, bottleneck} with conv_seg")


@dataclass(frozen=True)
class OCRParts:
    """The modules of one OCR head that run after the soft regions (see the module table)."""

    head: nn.Module           # the module holding the OCR block and the classifier
    block: nn.Module          # object_context_block
    key_proj: nn.Module       # proxies B x C x K x 1 -> key B x Ck x K x 1
    value_proj: nn.Module     # proxies -> value B x Ck x K x 1
    up: nn.Module             # context B x Ck x h x w -> object context B x C x h x w
    fuse: nn.Module           # cat([object context, pixel feats]) -> B x C x h x w
    cls: nn.Module            # B x C x h x w -> head logits B x K x h x w
    key_channels: int         # Ck
    sim_scale: float | None   # multiplies query @ key before the softmax; None: not scaled
    layout: str               # "official" | "openseg" | "mmseg"

    @property
    def per_pixel(self) -> bool:
        """True when every conv after the sim map is 1x1 (the head is then per pixel)."""
        convs = [m for part in (self.up, self.fuse, self.cls) for m in part.modules() if isinstance(m, nn.Conv2d)]
        return all(c.kernel_size == (1, 1) for c in convs)


def _unsupported(model: nn.Module, why: str) -> ValueError:
    return ValueError(
        f"{type(model).__name__} (arch={getattr(model, 'arch', '?')!r}) is not supported: {why}. Supported: "
        + "; ".join(SUPPORTED) + f". They need one of the OCR layouts {_LAYOUTS}. Not supported: scale > 1 "
        "(pooled queries), background-context blocks, and heads without OCR (ASPP, FCN)")


def _module(obj: object, name: str) -> nn.Module | None:
    m = getattr(obj, name, None)
    return m if isinstance(m, nn.Module) else None


def _official(model: nn.Module) -> OCRParts | None:
    for distri_name, cls_name, layout in (("ocr_distri_head", "cls_head", "official"),
                                          ("spatial_ocr_head", "head", "openseg")):
        # the model itself, its .head (ocrviz's OCRNet), else the first submodule holding the OCR module
        # (a wrapper around HighResolutionNet)
        head = next((m for m in (model, getattr(model, "head", None), *model.modules())
                     if isinstance(m, nn.Module) and _module(m, distri_name) is not None), None)
        if head is None:
            continue
        distri = _module(head, distri_name)
        block = _module(distri, "object_context_block")
        if block is None:
            raise _unsupported(model, f"{distri_name} has no object_context_block")
        missing = [n for n in ("f_object", "f_down", "f_up") if _module(block, n) is None]
        missing += [n for n, m in ((f"{distri_name}.conv_bn_dropout", _module(distri, "conv_bn_dropout")),
                                   (cls_name, _module(head, cls_name))) if m is None]
        if missing:
            raise _unsupported(model, f"missing {', '.join(missing)}")
        if getattr(block, "scale", 1) != 1 or getattr(block, "use_bg", False):
            raise _unsupported(model, f"object_context_block has scale={getattr(block, 'scale', 1)}, "
                                      f"use_bg={getattr(block, 'use_bg', False)}")
        ck = int(block.key_channels)
        return OCRParts(head, block, block.f_object, block.f_down, block.f_up, distri.conv_bn_dropout,
                        getattr(head, cls_name), ck, ck ** -0.5, layout)
    return None


def _mmseg(model: nn.Module) -> OCRParts | None:
    for path, head in model.named_modules():
        block = _module(head, "object_context_block")
        if block is None or _module(head, "conv_seg") is None or not hasattr(block, "query_project"):
            continue
        missing = [n for n in ("key_project", "value_project", "out_project", "bottleneck") if _module(block, n) is None]
        if missing:
            raise _unsupported(model, f"{path}.object_context_block has no module {', '.join(missing)} (MMSeg's "
                                      f"OCRHead builds all four)")
        if getattr(block, "query_downsample", None) is not None or getattr(block, "key_downsample", None) is not None:
            raise _unsupported(model, f"{path}.object_context_block pools its queries or keys (scale > 1)")
        drop = getattr(head, "dropout", None)
        if drop is not None and not isinstance(drop, nn.modules.dropout._DropoutNd):
            raise _unsupported(model, f"{path}.dropout is a {type(drop).__name__}, not a Dropout (the identity "
                                      f"in eval mode)")
        ch = int(block.channels)
        return OCRParts(head, block, block.key_project, block.value_project, block.out_project, block.bottleneck,
                        head.conv_seg, ch, ch ** -0.5 if block.matmul_norm else None, "mmseg")
    return None


def ocr_parts(model: nn.Module) -> OCRParts:
    """The OCR head of ``model`` in any supported layout; a ValueError saying what is missing otherwise."""
    parts = _official(model) or _mmseg(model)
    if parts is None:
        raise _unsupported(model, "no ocr_distri_head / spatial_ocr_head with an object_context_block and no "
                                  "MMSeg OCRHead (object_context_block + conv_seg) found")
    return parts
