"""Real MMSegmentation for the interop tests: the ``mmseg`` extra, imported or a clear failure.

``mmcv-lite`` has no compiled ops, and ``mmseg.models`` imports
``mmcv.ops.point_sample`` (for mask classification, never used by OCRNet), which
loads ``mmcv._ext``.  When that module is missing, a stand-in whose functions
raise if called is put in its place (the recipe of the team's reference notes).
"""
from __future__ import annotations

import importlib.machinery
import sys
import types
from pathlib import Path

import pytest

INSTALL = ("pip install -c requirements.lock -e '.[test,mmseg]'   (make test installs the extra; "
           "pins in requirements.lock: mmsegmentation 1.2.2, mmengine 0.10.7, mmcv-lite 2.1.0)")

# MMSeg 1.2.2 configs/_base_/models/ocrnet_hr18.py with 19 classes and BN for SyncBN:
# used when the installed wheel does not ship its configs (mmseg/.mim/configs).
HR18_CHANNELS = (18, 36, 72, 144)


def _hrnet_backbone(norm_cfg: dict) -> dict:
    c = HR18_CHANNELS
    stage = lambda n, b, blk, ch: dict(num_modules=n, num_branches=len(ch), block=blk,  # noqa: E731
                                       num_blocks=(b,) * len(ch), num_channels=ch)
    return dict(type="HRNet", norm_cfg=norm_cfg, norm_eval=False, extra=dict(
        stage1=stage(1, 4, "BOTTLENECK", (64,)), stage2=stage(1, 4, "BASIC", c[:2]),
        stage3=stage(4, 4, "BASIC", c[:3]), stage4=stage(3, 4, "BASIC", c)))


def documented_hr18_model(num_classes: int = 19) -> dict:
    norm_cfg = dict(type="BN", requires_grad=True)
    common = dict(in_channels=list(HR18_CHANNELS), in_index=(0, 1, 2, 3), input_transform="resize_concat",
                  dropout_ratio=-1, num_classes=num_classes, norm_cfg=norm_cfg, align_corners=False)
    return dict(type="CascadeEncoderDecoder", num_stages=2, backbone=_hrnet_backbone(norm_cfg), decode_head=[
        dict(type="FCNHead", channels=sum(HR18_CHANNELS), kernel_size=1, num_convs=1, concat_input=False,
             loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=0.4), **common),
        dict(type="OCRHead", channels=512, ocr_channels=256,
             loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0), **common)],
        train_cfg=dict(), test_cfg=dict(mode="whole"))


def _stand_in_ext() -> types.ModuleType:
    ext = types.ModuleType("mmcv._ext")
    ext.__spec__ = importlib.machinery.ModuleSpec("mmcv._ext", None)   # no loader: mmengine's mmcv_full_available() is False

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)

        def op(*args, **kwargs):
            raise RuntimeError(f"mmcv._ext.{name} is a test stand-in (mmcv-lite has no compiled ops)")
        return op
    ext.__getattr__ = __getattr__
    return ext


def import_mmseg():
    """``(mmseg, MODELS, Config)`` from the real package, or fail the test saying how to install it."""
    try:
        import mmcv  # noqa: F401  (mmcv-lite)
        try:
            import mmcv._ext  # noqa: F401
        except ImportError:
            sys.modules["mmcv._ext"] = _stand_in_ext()
        import mmseg
        from mmengine.config import Config
        from mmseg.registry import MODELS
        from mmseg.utils import register_all_modules
    except ImportError as err:
        pytest.fail(f"the MMSeg interop test needs real MMSegmentation, which cannot be imported here "
                    f"({type(err).__name__}: {err}); install the `mmseg` extra: {INSTALL}", pytrace=False)
    register_all_modules()
    return mmseg, MODELS, Config


def bn_everywhere(cfg) -> None:
    """Every ``norm_cfg`` in an MMSeg config set to plain BN (SyncBN needs a process group); None stays None."""
    if isinstance(cfg, dict):
        for key, value in cfg.items():
            if key == "norm_cfg" and value is not None:
                cfg[key] = dict(type="BN", requires_grad=True)   # SyncBN needs a process group
            else:
                bn_everywhere(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            bn_everywhere(value)


def hr18_model_config(mmseg, Config) -> tuple[dict, str]:
    """MMSeg's own OCRNet-HR18 Cityscapes model config (from the wheel), else the documented values."""
    path = Path(mmseg.__file__).parent / ".mim" / "configs" / "ocrnet" / "ocrnet_hr18_4xb2-80k_cityscapes-512x1024.py"
    if not path.is_file():
        return documented_hr18_model(), "documented config values (the wheel ships no configs)"
    cfg = Config.fromfile(str(path))
    model = cfg.model.to_dict()
    model.pop("data_preprocessor", None)
    model.pop("pretrained", None)
    model["backbone"].pop("init_cfg", None)
    bn_everywhere(model)
    return model, str(path)


# What MMSeg 1.x writes as meta["cfg"] (the runner's cfg.pretty_text) for OCRNet-HR18 Cityscapes,
# trimmed to the normalisation: used when the wheel ships no configs.
DOCUMENTED_HR18_CFG_TEXT = """\
crop_size = (
    512,
    1024,
)
data_preprocessor = dict(
    bgr_to_rgb=True,
    mean=[
        123.675,
        116.28,
        103.53,
    ],
    pad_val=0,
    seg_pad_val=255,
    size=(
        512,
        1024,
    ),
    std=[
        58.395,
        57.12,
        57.375,
    ],
    type='SegDataPreProcessor')
model = dict(
    data_preprocessor=dict(
        bgr_to_rgb=True,
        mean=[
            123.675,
            116.28,
            103.53,
        ],
        pad_val=0,
        seg_pad_val=255,
        size=(
            512,
            1024,
        ),
        std=[
            58.395,
            57.12,
            57.375,
        ],
        type='SegDataPreProcessor'),
    num_stages=2,
    pretrained='open-mmlab://msra/hrnetv2_w18',
    type='CascadeEncoderDecoder')
"""


def hr18_cfg_text(mmseg, Config) -> tuple[str, str]:
    """meta["cfg"] as MMSeg 1.x's runner writes it (``cfg.pretty_text``) for OCRNet-HR18, and its source."""
    path = Path(mmseg.__file__).parent / ".mim" / "configs" / "ocrnet" / "ocrnet_hr18_4xb2-80k_cityscapes-512x1024.py"
    if not path.is_file():
        return DOCUMENTED_HR18_CFG_TEXT, "documented pretty_text (the wheel ships no configs)"
    return Config.fromfile(str(path)).pretty_text, str(path)
