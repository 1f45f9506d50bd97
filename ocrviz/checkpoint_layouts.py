"""The foreign HRNet-OCR checkpoint layouts ocrviz recognises, mapped onto its own keys.

Each layout is the HRNetV2 + OCR architecture under other names.  Mapping a
state dict returns the official HRNet-OCR keys of
:class:`ocrviz.models.hrnet.HRNetW48OCR` (see ``tests/reference/*.json`` for the
manifests the mappings are tested against):

* ``official`` - HRNet/HRNet-Semantic-Segmentation, branch HRNet-OCR: the
  keys already are ocrviz's, behind the training wrappers (``model.`` with
  ``loss.*`` buffers, DataParallel ``module.model.`` with ``module.loss.*``).
* ``mmseg`` - MMSegmentation's OCRNet (``CascadeEncoderDecoder``, HRNetV2
  backbone): ``backbone.*``; ``ConvModule`` pairs ``<name>.conv`` /
  ``<name>.bn``; ``decode_head.0`` (FCNHead) is ``aux_head``;
  ``decode_head.1`` (OCRHead) holds ``bottleneck`` = ``conv3x3_ocr`` and the
  ``object_context_block`` (query/key/value/out_project = f_pixel/f_object/
  f_down/f_up, its ``bottleneck`` = ``conv_bn_dropout``).  MMSeg's convs
  before a BN have no bias: ocrviz's ``conv3x3_ocr`` and first aux conv get
  zeros.  MMSeg resizes with ``align_corners=False``.
* ``openseg`` - openseg.pytorch's HRNet_W48_OCR (``bn_type`` torchbn or
  torchsyncbn): ``backbone.*``, ``conv3x3`` = ``conv3x3_ocr``, nested
  BN+ReLU pairs (``.1.0.``), a 3x3 first aux conv, and a bias on every 1x1
  conv of the OCR block.  Each of those convs feeds a BatchNorm, so its bias
  is folded into that BN's running mean (BN(Wx + b) with mean m equals
  BN(Wx) with mean m - b): the same function, in eval and train mode alike.
"""
from __future__ import annotations

import re

import torch

WRAPPERS = ("module.", "model.")            # DataParallel, the official FullModel(model, loss)
TRAINING_EXTRAS = ("loss.", "criterion.")   # buffers of the official training wrapper's loss

DESCRIPTIONS = {
    "ocrviz": "ocrviz's own checkpoints (ocrviz.save_checkpoint: safetensors or torch, arch in the metadata)",
    "official": "official HRNet-OCR (HRNet-Semantic-Segmentation, branch HRNet-OCR): a raw state dict, "
                "'model.'-prefixed with 'loss.*', {'state_dict': ...}, or DataParallel 'module.model.*' "
                "with 'module.loss.*'",
    "mmseg": "MMSegmentation OCRNet with an HRNetV2 backbone (W18, W48, ...): {'meta', 'state_dict'} with "
             "'backbone.*', 'decode_head.0.*' (FCN aux head), 'decode_head.1.*' (OCRHead)",
    "openseg": "openseg.pytorch HRNet_W48_OCR (bn_type torchbn/torchsyncbn): 'backbone.*', 'conv3x3.*', "
               "3x3 'aux_head', conv biases in the OCR block",
}

NAMES = {"official": "official HRNet-OCR", "mmseg": "MMSeg OCRNet (HRNetV2)",
         "openseg": "openseg.pytorch HRNet_W48_OCR"}

_OCB = "ocr_distri_head.object_context_block."
_MM_OCB = "decode_head.1.object_context_block."
MMSEG_RENAMES: tuple[tuple[str, str], ...] = (
    ("decode_head.0.convs.0.conv.", "aux_head.0."),
    ("decode_head.0.convs.0.bn.", "aux_head.1."),
    ("decode_head.0.conv_seg.", "aux_head.3."),
    ("decode_head.1.bottleneck.conv.", "conv3x3_ocr.0."),
    ("decode_head.1.bottleneck.bn.", "conv3x3_ocr.1."),
    *[(f"{_MM_OCB}{mm}.{i}.{part}.", f"{_OCB}{ours}.{2 * i + (part == 'bn')}{'.0' if part == 'bn' else ''}.")
      for mm, ours in (("query_project", "f_pixel"), ("key_project", "f_object"))
      for i in (0, 1) for part in ("conv", "bn")],
    (f"{_MM_OCB}value_project.conv.", f"{_OCB}f_down.0."),
    (f"{_MM_OCB}value_project.bn.", f"{_OCB}f_down.1.0."),
    (f"{_MM_OCB}out_project.conv.", f"{_OCB}f_up.0."),
    (f"{_MM_OCB}out_project.bn.", f"{_OCB}f_up.1.0."),
    (f"{_MM_OCB}bottleneck.conv.", "ocr_distri_head.conv_bn_dropout.0."),
    (f"{_MM_OCB}bottleneck.bn.", "ocr_distri_head.conv_bn_dropout.1.0."),
    ("decode_head.1.conv_seg.", "cls_head."),
    ("backbone.", ""),
)
MMSEG_ZERO_BIASES = ("aux_head.0", "conv3x3_ocr.0")   # bias-free ConvModule convs; ocrviz's have a bias

OPENSEG_RENAMES: tuple[tuple[str, str], ...] = (
    ("backbone.", ""),
    ("conv3x3.0.", "conv3x3_ocr.0."),
    ("conv3x3.1.0.", "conv3x3_ocr.1."),
    ("aux_head.1.0.", "aux_head.1."),
    ("aux_head.2.", "aux_head.3."),
)
# 1x1 convs of openseg's OCR block that carry a bias -> the BatchNorm each one feeds.
OPENSEG_FOLDED_BIASES = {f"{_OCB}{conv}": f"{_OCB}{bn}" for conv, bn in (
    ("f_pixel.0", "f_pixel.1.0"), ("f_pixel.2", "f_pixel.3.0"), ("f_object.0", "f_object.1.0"),
    ("f_object.2", "f_object.3.0"), ("f_down.0", "f_down.1.0"), ("f_up.0", "f_up.1.0"))} | {
    "ocr_distri_head.conv_bn_dropout.0": "ocr_distri_head.conv_bn_dropout.1.0"}


def _is_extra(key: str) -> bool:
    while key.startswith(WRAPPERS):
        key = key.split(".", 1)[1]
    return key.startswith(TRAINING_EXTRAS)


def strip_wrappers(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove ``module.`` / ``model.`` wrappers that hold every key but training-loss buffers."""
    for _ in range(4):
        for prefix in WRAPPERS:
            inner = [k for k in sd if k.startswith(prefix)]
            if inner and all(k.startswith(prefix) or _is_extra(k) for k in sd):
                sd = {k[len(prefix):]: sd[k] for k in inner if not _is_extra(k[len(prefix):])}
                break
        else:
            break
    return sd


def detect(sd: dict[str, torch.Tensor]) -> str | None:
    """'official' | 'mmseg' | 'openseg' for a wrapper-stripped state dict, else None."""
    if "conv3x3_ocr.0.weight" in sd and "transition1.0.0.weight" in sd:
        return "official"
    if "backbone.transition1.0.0.weight" in sd:
        if f"{_MM_OCB}query_project.0.conv.weight" in sd:
            return "mmseg"
        if "conv3x3.1.0.weight" in sd and f"{_OCB}f_pixel.0.weight" in sd:   # torchbn BN+ReLU pairs
            return "openseg"
    return None


def unsupported_reason(sd: dict[str, torch.Tensor]) -> str | None:
    """Why a state dict that looks like a known OCRNet cannot be mapped faithfully, if it does."""
    if f"{_MM_OCB}query_project.0.conv.weight" in sd and "backbone.transition1.0.0.weight" not in sd:
        return ("it is an MMSeg OCRNet with a non-HRNet backbone (e.g. ocrnet_r101-d8); ocrviz maps only "
                "HRNetV2 backbones onto its HRNet-OCR")
    if "conv3x3.1.weight" in sd and f"{_OCB}f_pixel.1.weight" in sd:
        return ("it is an openseg.pytorch OCR net built with bn_type inplace_abn (BN and a leaky ReLU in one "
                "module, keys '.1.weight'); ocrviz's ReLU OCR head would not compute the same function")
    return None


def _rename(sd: dict[str, torch.Tensor], renames: tuple[tuple[str, str], ...]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in sd.items():
        for old, new in renames:
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    return out


def to_ocrviz(sd: dict[str, torch.Tensor], layout: str) -> dict[str, torch.Tensor]:
    """Map a wrapper-stripped ``layout`` state dict onto HRNetW48OCR keys (tensors are not copied)."""
    if layout == "official":
        return dict(sd)
    if layout == "mmseg":
        out = _rename(sd, MMSEG_RENAMES)
        for conv in MMSEG_ZERO_BIASES:
            w = out.get(f"{conv}.weight")
            if w is not None and f"{conv}.bias" not in out:
                out[f"{conv}.bias"] = torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
        return out
    if layout == "openseg":
        out = _rename(sd, OPENSEG_RENAMES)
        for conv, bn in OPENSEG_FOLDED_BIASES.items():
            bias, mean = out.pop(f"{conv}.bias", None), out.get(f"{bn}.running_mean")
            if bias is not None and mean is not None:
                out[f"{bn}.running_mean"] = mean - bias.to(mean.dtype)
            elif bias is not None:
                out[f"{conv}.bias"] = bias       # left for the key check to report
        return out
    raise ValueError(f"unknown layout {layout!r}; known: {', '.join(DESCRIPTIONS)}")


def _count(sd: dict[str, torch.Tensor], pattern: str) -> int:
    found = {int(m.group(1)) for k in sd if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def hrnet_geometry(sd: dict[str, torch.Tensor]) -> dict:
    """HRNetW48OCR constructor arguments read from an ocrviz-keyed state dict's tensor shapes.

    Raises ``ValueError`` when the HRNet is not the standard HRNetV2 (1, 4, 3
    modules in stages 2-4, 4 blocks per branch), e.g. MMSeg's HRNetV2-W18-Small.
    """
    def shape(key: str) -> tuple[int, ...]:
        if key not in sd:
            raise ValueError(f"no {key!r} in the checkpoint")
        return tuple(sd[key].shape)

    layout = (_count(sd, r"stage2\.(\d+)\."), _count(sd, r"stage3\.(\d+)\."), _count(sd, r"stage4\.(\d+)\."))
    blocks = _count(sd, r"stage2\.0\.branches\.0\.(\d+)\."), _count(sd, r"layer1\.(\d+)\.")
    if layout != (1, 4, 3) or blocks != (4, 4):
        raise ValueError(f"its HRNet has {layout} modules in stages 2-4 and {blocks[0]} blocks per branch "
                         f"({blocks[1]} in layer1); ocrviz builds the standard HRNetV2 ((1, 4, 3) modules, 4 "
                         f"blocks), not variants such as HRNetV2-W18-Small")
    return {"num_classes": shape("cls_head.weight")[0],
            "width": shape("transition1.0.0.weight")[0],
            "ocr_mid_channels": shape("conv3x3_ocr.0.weight")[0],
            "ocr_key_channels": shape(f"{_OCB}f_pixel.0.weight")[0],
            "aux_kernel_size": shape("aux_head.0.weight")[-1]}


def describe(sd: dict[str, torch.Tensor], n_first: int = 5) -> str:
    """'N entries (P parameters); first keys [...]; by top-level name: backbone 1700, head 20'."""
    groups: dict[str, int] = {}
    for k in sd:
        top = k.split(".", 1)[0]
        groups[top] = groups.get(top, 0) + 1
    tops = ", ".join(f"{g} {n}" for g, n in sorted(groups.items(), key=lambda t: -t[1])[:8])
    more = f" and {len(groups) - 8} more" if len(groups) > 8 else ""
    numel = sum(v.numel() for v in sd.values() if isinstance(v, torch.Tensor))
    return (f"{len(sd)} entries ({numel:,} values); first keys {list(sd)[:n_first]}; "
            f"entries by top-level name: {tops}{more}")
