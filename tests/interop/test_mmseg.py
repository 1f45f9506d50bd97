"""Real MMSegmentation (the `mmseg` extra): its OCRNet-HR18, saved as MMSeg saves it, through ocrviz.

No skip: without the extra the test fails and says how to install it.
"""
from __future__ import annotations

import pytest
import torch

import ocrviz
from random_bn import randomise_bn
from mmseg_env import documented_hr18_model, hr18_model_config, import_mmseg
from ocrviz import capture, run_with_cache

pytestmark = pytest.mark.filterwarnings(               # MMSeg's and mmengine's own notices
    "ignore::DeprecationWarning", "ignore:.*build_loss:UserWarning", "ignore:.*avg_non_ignore:UserWarning")

CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
           "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
           "motorcycle", "bicycle")
PALETTE = [[128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156], [190, 153, 153], [153, 153, 153],
           [250, 170, 30], [220, 220, 0], [107, 142, 35], [152, 251, 152], [70, 130, 180], [220, 20, 60],
           [255, 0, 0], [0, 0, 142], [0, 0, 70], [0, 60, 100], [0, 80, 100], [0, 0, 230], [119, 11, 32]]
IMAGE = (1, 3, 64, 128)


@pytest.fixture(scope="module")
def mmseg_checkpoint(tmp_path_factory):
    """MMSeg's OCRNet-HR18 with random weights and BN statistics, and the file MMSeg would write."""
    mmseg, MODELS, Config = import_mmseg()
    cfg, source = hr18_model_config(mmseg, Config)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    randomise_bn(model, 1, spread=0.1, conv_bias=True)
    path = tmp_path_factory.mktemp("mmseg") / "ocrnet_hr18_4xb2-80k_cityscapes-512x1024.pth"
    meta = {"mmseg_version": mmseg.__version__, "config": f"# built from {source}\nmodel = {cfg!r}",
            "CLASSES": CLASSES, "PALETTE": PALETTE, "iter": 80000,
            "dataset_meta": {"classes": CLASSES, "palette": PALETTE}}
    optimizer = {"state": {}, "param_groups": [{"lr": 1e-4, "momentum": 0.9, "params": [0, 1]}]}
    torch.save({"meta": meta, "state_dict": model.state_dict(), "optimizer": optimizer}, path)
    return model, path


def test_from_checkpoint_reproduces_mmseg_ocrnet_hr18(mmseg_checkpoint):
    mm, path = mmseg_checkpoint
    assert len(mm.state_dict()) == 1888
    ours = ocrviz.from_checkpoint(path)
    assert not ours.training
    assert (ours.width, ours.num_classes, ours.align_corners, ours.checkpoint_layout) == (18, 19, False, "mmseg")
    assert ours.class_names == list(CLASSES) and ours.palette == [tuple(c) for c in PALETTE]

    x = torch.randn(*IMAGE)
    with torch.no_grad():
        mm_low = mm(x, mode="tensor")                                           # 1 x 19 x 16 x 32
        mm_full = mm.encode_decode(x, [dict(img_shape=IMAGE[2:])])              # resized as MMSeg predicts
        mm_aux = mm.decode_head[0](mm.extract_feat(x))
    out, cache = run_with_cache(ours, x)
    assert mm_low.shape == cache.head_logits.shape == (1, 19, 16, 32)
    assert mm_full.shape == out.shape == (1, 19, *IMAGE[2:])
    assert (cache.head_logits - mm_low).abs().max() <= 1e-5
    assert (out - mm_full).abs().max() <= 1e-5
    assert (cache.soft_regions - mm_aux).abs().max() <= 1e-5
    assert mm_low.std() > 0.1                                                   # not a degenerate comparison


def test_capture_on_mmseg_model_equals_ocrviz_sim_map(mmseg_checkpoint):
    mm, path = mmseg_checkpoint
    ours = ocrviz.from_checkpoint(path)
    x = torch.randn(*IMAGE)
    with capture(mm) as theirs, torch.no_grad():
        mm(x, mode="tensor")
    _, cache = run_with_cache(ours, x)
    assert theirs.sim_map.shape == cache.sim_map.shape == (1, 16 * 32, 19)
    assert (theirs.sim_map - cache.sim_map).abs().max() <= 1e-5
    assert (theirs.sim_map.max(-1).values > 0.2).any()                          # attention is not uniform


def test_documented_fallback_config_builds_the_same_model(mmseg_checkpoint):
    mm, _ = mmseg_checkpoint
    _, MODELS, _ = import_mmseg()
    fallback = MODELS.build(documented_hr18_model())
    assert [(k, v.shape) for k, v in fallback.state_dict().items()] == [(k, v.shape) for k, v in mm.state_dict().items()]


# BGR statistics unlike ImageNet's, so that a wrong channel order or a wrong default shows.
BGR_VALUES = {"123.675": "100.0", "116.28": "110.0", "103.53": "120.0", "58.395": "50.0", "57.12": "60.0",
              "57.375": "70.0", "bgr_to_rgb=True": "bgr_to_rgb=False"}


@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_mmseg_preprocessing_equals_ocrviz_default_input(mmseg_checkpoint, tmp_path, order):
    """meta["cfg"] as MMSeg 1.x writes it: MMSeg's own data_preprocessor on the BGR image it decodes
    = ocrviz's default input for the RGB image (the explorer's, with the model's own normalisation)."""
    from mmseg.models import SegDataPreProcessor

    from mmseg_env import hr18_cfg_text
    from ocrviz.normalisation import input_normalisation
    from ocrviz.widgets.explorer import _model_input

    mm, _ = mmseg_checkpoint
    mmseg, _, Config = import_mmseg()
    text, _ = hr18_cfg_text(mmseg, Config)
    if order == "bgr":
        for old, new in BGR_VALUES.items():
            text = text.replace(old, new)
    cfg = Config.fromstring(text, ".py")
    pre = SegDataPreProcessor(**{k: v for k, v in cfg.model.data_preprocessor.items() if k != "type"})
    path = tmp_path / "ocrnet.pth"
    torch.save({"meta": {"cfg": text, "dataset_meta": {"classes": CLASSES, "palette": PALETTE}},
                "state_dict": mm.state_dict()}, path)
    ours = ocrviz.from_checkpoint(path)
    assert ours.checkpoint_input_order == order

    rgb = torch.randint(0, 256, (IMAGE[2], IMAGE[3], 3), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    bgr = rgb.flip(-1)                                                          # as cv2 decodes the file
    with torch.no_grad():
        theirs = mm(pre({"inputs": [bgr.permute(2, 0, 1)]}, False)["inputs"], mode="tensor")
        wrong_order = mm(pre({"inputs": [rgb.permute(2, 0, 1)]}, False)["inputs"], mode="tensor")
    _, cache = run_with_cache(ours, _model_input(rgb.numpy(), None, *input_normalisation(ours)))
    assert (cache.head_logits - theirs).abs().max() <= 1e-4
    assert (wrong_order - theirs).abs().max() > 1e-2                           # the channel order matters
    assert input_normalisation(ours) == ((None, None) if order == "rgb" else ([120.0, 110.0, 100.0], [70.0, 60.0, 50.0]))


def test_the_command_line_from_an_mmseg_checkpoint_to_html_reports(mmseg_checkpoint, tmp_path, capsys):
    """What a researcher runs: `ocrviz explain` and `ocrviz report` straight on the file MMSeg wrote,
    and a Cityscapes-layout folder; the report's metrics are those of MMSeg's own model."""
    import json

    import numpy as np
    from PIL import Image

    from ocrviz.cli import main
    from ocrviz.data.folders import CityscapesFolder
    from ocrviz.evaluate import confusion_matrix

    mm, path = mmseg_checkpoint
    rng = np.random.default_rng(0)
    img_dir, gt_dir = tmp_path / "city" / "leftImg8bit" / "val" / "aachen", tmp_path / "city" / "gtFine" / "val" / "aachen"
    img_dir.mkdir(parents=True)
    gt_dir.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (IMAGE[2], IMAGE[3], 3), dtype=np.uint8)).save(
            img_dir / f"aachen_00000{i}_000019_leftImg8bit.png")
        Image.fromarray(rng.choice([7, 8, 11, 21, 23, 26, 0], (IMAGE[2], IMAGE[3])).astype(np.uint8)).save(
            gt_dir / f"aachen_00000{i}_000019_gtFine_labelIds.png")
    page = tmp_path / "explain.html"
    code = main(["explain", str(img_dir / "aachen_000000_000019_leftImg8bit.png"), "--model", str(path),
                 "--pixel", "20,40", "--quiet", "-o", str(page)])
    assert code == 0, capsys.readouterr().err
    html = page.read_text()
    assert "ocrviz-root" in html and "traffic light" in html                  # the explorer, MMSeg's class names
    code = main(["report", str(tmp_path / "city"), "--model", str(path), "--quiet", "-o", str(tmp_path / "r.html"),
                 "--json", str(tmp_path / "r.json")])
    assert code == 0, capsys.readouterr().err
    got = json.loads((tmp_path / "r.json").read_text())
    # MMSeg's own prediction of each image (its data preprocessing from the documented Cityscapes values)
    folder = CityscapesFolder(tmp_path / "city")
    mean, std = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1), torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
    want = np.zeros((19, 19), np.int64)
    for image, labels, _ in (folder[i] for i in range(len(folder))):
        x = ((torch.from_numpy(np.asarray(image)).permute(2, 0, 1).float() - mean) / std)[None]
        with torch.no_grad():
            pred = mm.encode_decode(x, [dict(img_shape=IMAGE[2:])]).argmax(1)[0].numpy()
        want += confusion_matrix(pred, np.asarray(labels), 19)
    assert np.array_equal(np.asarray(got["models"][0]["metrics"]["confusion"]), want)
    assert got["models"][0]["metrics"]["n_images"] == 2
