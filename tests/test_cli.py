"""The ``ocrviz`` command line: explain and report on tiny inputs, delegation, and bad input.

Everything runs in-process through ``ocrviz.cli.main(argv)`` on 64 x 128
ToyCity scenes (one subprocess checks the real entry point); bad input must
give exit status 2, exactly one line on stderr, no traceback, and no output file.
"""
from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ocrviz.cli import main

H, W = 64, 128
CKPT = Path(__file__).resolve().parents[1] / "data" / "checkpoints" / "toycity-ocr.safetensors"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Two ToyCity scenes as PNG images + label PNGs, a masks folder of them, and some broken files."""
    from ocrviz.data.dataset import val_split
    from ocrviz.data.toycity import make_scene

    d = tmp_path_factory.mktemp("cli")
    (d / "folder" / "images").mkdir(parents=True)
    (d / "folder" / "masks").mkdir()
    for i, seed in enumerate(val_split(2)):
        s = make_scene(seed, H, W)
        Image.fromarray(s.image).save(d / f"scene{i}.png")
        Image.fromarray(s.labels.astype(np.uint8)).save(d / f"scene{i}_gt.png")
        Image.fromarray(s.image).save(d / "folder" / "images" / f"s{i}.png")
        Image.fromarray(s.labels.astype(np.uint8)).save(d / "folder" / "masks" / f"s{i}.png")
    city_img, city_gt = d / "cityscapes" / "leftImg8bit" / "val" / "aachen", d / "cityscapes" / "gtFine" / "val" / "aachen"
    city_img.mkdir(parents=True)
    city_gt.mkdir(parents=True)
    Image.fromarray(make_scene(1, H, W).image).save(city_img / "a_000000_000019_leftImg8bit.png")
    Image.fromarray(np.full((H, W), 7, np.uint8)).save(city_gt / "a_000000_000019_gtFine_labelIds.png")
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (d / "notes.pth").write_bytes(b"this is not a checkpoint")
    wrong = np.zeros((H, W), np.uint8)
    wrong[0, :4] = 40                                            # class 40: the model has 9
    Image.fromarray(wrong).save(d / "wrong_gt.png")
    Image.fromarray(np.zeros((H // 2, W), np.uint8)).save(d / "small_gt.png")
    return d


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def fragments(page: str) -> list[dict]:
    """The explorer data blocks of a page (one per image)."""
    blocks = re.findall(r'<script type="application/json" id="ocrviz-data-[A-Za-z0-9_-]+">(.*?)</script>', page, re.S)
    return [json.loads(b) for b in blocks]


def assert_offline(page: str) -> None:
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.I), "a script loads from somewhere"
    assert not re.search(r"""\b(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I), "a resource from the network"
    assert not re.search(r"""(import\s*\(|from\s+)["']https?://""", page), "a module import from the network"


def test_explain_writes_an_offline_page_with_each_explorer(files, capsys) -> None:
    out = files / "explain.html"
    code, stdout, err = run(["explain", files / "scene0.png", files / "scene1.png", "--model", "toycity-ocr",
                             "--labels", files / "scene0_gt.png", files / "scene1_gt.png", "--pixel", "30,60",
                             "-o", out], capsys)
    assert code == 0, err
    page = out.read_text(encoding="utf-8")
    assert_offline(page)
    blocks = fragments(page)
    assert len(blocks) == 2
    for b in blocks:
        assert b["feat_hw"] == [H // 8, W // 8] and b["image_hw"] == [H, W]
        assert b["selected"] == [30 // 8, 60 // 8] and b["pinned"] is True
        assert "sim_map" in b and b["sim_map"]["b64"]
    assert page.count("effective number of regions") == 2 and "selected cell (3, 7)" in page
    assert len(stdout.strip().splitlines()) == 2 and "effective regions of 9" in stdout
    assert not [p for p in files.iterdir() if p.name.endswith(".tmp")]


def test_explain_summary_numbers_come_from_the_sim_map(files) -> None:
    """effective regions = mean exp(entropy) of the captured sim rows; top regions = largest mean weight."""
    import ocrviz
    from ocrviz.cli import context_summary
    from ocrviz.data.images import load_image
    from ocrviz.widgets import Explorer

    image = load_image(files / "scene0.png")[0]
    data = Explorer(ocrviz.load_model("toycity-ocr"), image).data
    s = context_summary(data, (2, 3))
    sim = data.sim_map.astype(np.float64)
    want = np.exp(-(sim * np.log(np.where(sim > 0, sim, 1))).sum(1)).mean()
    assert s["effective_regions"] == pytest.approx(want, rel=1e-9) and 1 <= want <= 9
    mean = sim.mean(0)
    assert [r["region"] for r in s["top_regions"]] == [data.class_names[k] for k in np.argsort(-mean)[:3]]
    assert s["top_regions"][0]["share"] == pytest.approx(mean.max())
    assert s["pixel"]["top_regions"][0]["share"] == pytest.approx(sim[2 * data.feat_hw[1] + 3].max())


def test_report_on_toycity_equals_evaluate(files, capsys) -> None:
    import ocrviz
    from ocrviz.data.dataset import ToyCityDataset, val_split
    from ocrviz.evaluate import evaluate

    html_out, json_out = files / "report.html", files / "report.json"
    code, _, err = run(["report", "toycity", "--model", "toycity-ocr", "--images", 3, "--height", H, "--width", W,
                        "--quiet", "-o", html_out, "--json", json_out], capsys)
    assert code == 0, err
    got = json.loads(json_out.read_text())["models"][0]["metrics"]
    want = evaluate(ocrviz.load_model("toycity-ocr"), ToyCityDataset(val_split(3), height=H, width=W))
    for key in ("miou", "pixel_acc", "ambiguous_acc", "cue_free_acc", "confusion", "n_images", "per_class_iou"):
        assert got[key] == want[key], key
    page = html_out.read_text(encoding="utf-8")
    assert_offline(page)
    assert f"{want['miou']:.3f}" in page and "Per-class IoU" in page
    # the dataset-level analyses are the real ones, on the same images
    from ocrviz.analysis import attention_report, context_flow

    from ocrviz.data.toycity import make_scene

    scenes = [make_scene(seed=s_, height=H, width=W) for s_ in val_split(3)]      # what the dataset renders
    model = ocrviz.load_model("toycity-ocr")
    rep = attention_report(model, [sc.image for sc in scenes], [sc.labels for sc in scenes], progress=False)
    got_rep = json.loads(json_out.read_text())["models"][0]["analyses"]["attention_report"]["dict"]
    for key in ("miou", "miou_uniform_sim", "effective_regions", "top_is_true"):
        assert got_rep[key] == pytest.approx(getattr(rep, key), abs=1e-9), key
    flow = context_flow(model, [sc.image for sc in scenes], [sc.labels for sc in scenes])
    assert "context_flow" in json.loads(json_out.read_text())["models"][0]["analyses"]
    assert flow.ocr_mass.shape == (9, 9)


def test_report_on_a_masks_folder_equals_evaluate(files, capsys) -> None:
    import ocrviz
    from ocrviz.data.dataset import normalize
    from ocrviz.evaluate import evaluate

    json_out = files / "folder.json"
    code, _, err = run(["report", files / "folder", "--model", "toycity-ocr", "--quiet", "--no-analyses",
                        "-o", files / "folder.html", "--json", json_out], capsys)
    assert code == 0, err
    items = [dict(image=normalize(np.asarray(Image.open(files / "folder" / "images" / f"s{i}.png").convert("RGB"))),
                  labels=torch.from_numpy(np.asarray(Image.open(files / "folder" / "masks" / f"s{i}.png"))
                                          .astype(np.int64))) for i in range(2)]
    want = evaluate(ocrviz.load_model("toycity-ocr"), items, batch_size=1)
    got = json.loads(json_out.read_text())["models"][0]["metrics"]
    assert got["confusion"] == want["confusion"] and got["miou"] == want["miou"] and got["n_images"] == 2


def test_report_feeds_a_folder_with_the_models_own_normalisation(files, capsys) -> None:
    """A checkpoint that carries its input statistics (as from an MMSeg config) is evaluated on them."""
    import ocrviz
    from ocrviz.evaluate import evaluate

    model = ocrviz.load_model("toycity-ocr")
    model.input_mean, model.input_std = [90.0, 100.0, 110.0], [40.0, 50.0, 60.0]
    ckpt = ocrviz.save_checkpoint(model, files / "own_norm.safetensors")
    json_out = files / "own_norm.json"
    code, _, err = run(["report", files / "folder", "--model", ckpt, "--quiet", "--no-analyses",
                        "-o", files / "own_norm.html", "--json", json_out], capsys)
    assert code == 0, err

    def item(i: int, mean, std) -> dict:
        img = np.asarray(Image.open(files / "folder" / "images" / f"s{i}.png").convert("RGB")).astype(np.float32)
        x = (img / 255 - np.asarray(mean, np.float32) / 255) / (np.asarray(std, np.float32) / 255)   # written out
        return dict(image=torch.from_numpy(x.transpose(2, 0, 1).copy()),
                    labels=torch.from_numpy(np.asarray(Image.open(files / "folder" / "masks" / f"s{i}.png"))
                                            .astype(np.int64)))
    want = evaluate(model, [item(i, model.input_mean, model.input_std) for i in range(2)], batch_size=1)
    imagenet = evaluate(model, [item(i, [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]) for i in range(2)],
                        batch_size=1)
    got = json.loads(json_out.read_text())["models"][0]["metrics"]
    assert got["confusion"] == want["confusion"] and got["confusion"] != imagenet["confusion"]


def test_train_and_evaluate_are_subcommands(capsys) -> None:
    code, out, _ = run(["evaluate", "toycity-fcn", "--images", 1, "--threads", 1], capsys)
    assert code == 0 and out.splitlines()[2].startswith("| toycity-fcn | 0.")
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0 and "ocrviz train" in capsys.readouterr().out


BAD = {
    "missing image": (["explain", "{d}/nothere.png", "--model", "toycity-ocr"], "nothere.png"),
    "unreadable image": (["explain", "{d}/broken.png", "--model", "toycity-ocr"], "broken.png"),
    "unknown model": (["explain", "{d}/scene0.png", "--model", "toycity-ocnet"], "toycity-ocr, toycity-aspp"),
    "missing checkpoint": (["explain", "{d}/scene0.png", "--model", "{d}/gone.pth"], "no such file"),
    "unrecognised checkpoint": (["explain", "{d}/scene0.png", "--model", "{d}/notes.pth"], "notes.pth"),
    "model without OCR": (["explain", "{d}/scene0.png", "--model", "toycity-fcn"], "no OCR block"),
    "wrong class count in a mask": (["explain", "{d}/scene0.png", "--model", "toycity-ocr", "--labels",
                                     "{d}/wrong_gt.png"], "0..8"),
    "mask of another size": (["explain", "{d}/scene0.png", "--model", "toycity-ocr", "--labels",
                              "{d}/small_gt.png"], "32x128"),
    "pixel outside": (["explain", "{d}/scene0.png", "--model", "toycity-ocr", "--pixel", "64,0"], "rows 0..63"),
    "pixel unparsable": (["explain", "{d}/scene0.png", "--model", "toycity-ocr", "--pixel", "3"], "Y,X"),
    "no such output folder": (["explain", "{d}/scene0.png", "--model", "toycity-ocr", "-o", "{d}/no/out.html"],
                              "does not exist"),
    "missing --model": (["explain", "{d}/scene0.png"], "--model"),
    "wrong class count for a checkpoint": (["explain", "{d}/scene0.png", "--model", "{ckpt}", "--num-classes", "19"],
                                           "19"),
    "dataset with other classes": (["report", "{d}/cityscapes", "--model", "toycity-ocr"], "19"),
    "unknown data": (["report", "{d}/nothere", "--model", "toycity-ocr"], "images-and-masks"),
    "too many toycity images": (["report", "toycity", "--model", "toycity-ocr", "--images", "500"], "1..200"),
    "no images": (["report", "toycity", "--model", "toycity-ocr", "--images", "0"], "1..200"),
    "unknown device": (["report", "toycity", "--model", "toycity-ocr", "--device", "tpu"], "cpu, cuda"),
    "unknown shipped model to evaluate": (["evaluate", "toycity-ocnet"], "toycity-ocr, toycity-aspp"),
    "unknown command": (["frobnicate"], "explain"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_with_one_line(files, capsys, case) -> None:
    argv, needle = BAD[case]
    argv = [a.format(d=files, ckpt=CKPT) for a in argv]
    out = files / f"bad-{case.replace(' ', '_')}.html"
    if "-o" not in argv and argv[0] in ("explain", "report"):
        argv += ["-o", str(out)]
    code, _, err = run(argv, capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert needle in lines[0] and "Traceback" not in err
    assert not out.exists()


def test_cuda_without_a_gpu_is_refused(files, capsys) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: --device cuda is allowed")
    out = files / "cuda.html"
    code, _, err = run(["explain", files / "scene0.png", "--model", "toycity-ocr", "--device", "cuda", "-o", out],
                       capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--device cpu" in err and not out.exists()


def test_a_failed_run_leaves_the_previous_output_alone(files, capsys) -> None:
    out = files / "kept.html"
    out.write_text("previous report")
    code, _, _ = run(["explain", files / "broken.png", "--model", "toycity-ocr", "-o", out], capsys)
    assert code == 2 and out.read_text() == "previous report"
    assert not [p for p in files.iterdir() if p.name.endswith(".tmp")]


def test_the_entry_point_runs_as_a_program(files) -> None:
    """As a user runs it: a real process, exit status 2, one line, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "ocrviz.cli", "explain", str(files / "broken.png"), "--model",
                           "toycity-ocr", "-o", str(files / "p.html")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (files / "p.html").exists()


def test_pyproject_declares_the_command() -> None:
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert 'ocrviz = "ocrviz.cli:main"' in text and 'ocrviz-train = "ocrviz.train:main"' in text


def test_explain_payload_decodes(files, capsys) -> None:
    """The explorer block's image is the PNG the page shows (base64, not deflated), at the input size."""
    out = files / "one.html"
    assert run(["explain", files / "scene0.png", "--model", "toycity-ocr", "--quiet", "-o", out], capsys)[0] == 0
    (block,) = fragments(out.read_text(encoding="utf-8"))
    raw = base64.b64decode(block["image"]["b64"])
    raw = zlib.decompress(raw) if block["image"]["deflate"] else raw
    import io

    assert Image.open(io.BytesIO(raw)).size == (W, H)


def test_explain_takes_a_checkpoint_file(files, capsys) -> None:
    """--model PATH goes through ocrviz.from_checkpoint: the same page numbers as the shipped name."""
    by_name, by_file = files / "by_name.html", files / "by_file.html"
    for model, out in (("toycity-ocr", by_name), (CKPT, by_file)):
        code, stdout, err = run(["explain", files / "scene0.png", "--model", model, "-o", out], capsys)
        assert code == 0, err
    a, b = (fragments(p.read_text(encoding="utf-8"))[0] for p in (by_name, by_file))
    assert a["sim_map"]["b64"] == b["sim_map"]["b64"] and a["class_names"] == b["class_names"]


def test_explain_normalises_with_the_checkpoints_own_statistics(files, capsys, monkeypatch) -> None:
    """A checkpoint that carries its normalisation (input_mean / input_std, e.g. from an MMSeg config)
    is explained with it; one without (the shipped model) with ImageNet's, the default."""
    import ocrviz.widgets
    from ocrviz import load_model, save_checkpoint

    model = load_model("toycity-ocr")
    model.input_mean, model.input_std = (100.0, 110.0, 120.0), (50.0, 60.0, 70.0)
    own = save_checkpoint(model, files / "own_norm.safetensors")
    seen = []

    class Recording(ocrviz.widgets.Explorer):
        def __init__(self, *args, **kwargs):
            seen.append((kwargs.get("mean"), kwargs.get("std")))
            super().__init__(*args, **kwargs)
    monkeypatch.setattr(ocrviz.widgets, "Explorer", Recording)
    pages = []
    for spec in (own, "toycity-ocr"):
        out = files / f"norm_{len(pages)}.html"
        code, _, err = run(["explain", files / "scene0.png", "--model", spec, "--quiet", "-o", out], capsys)
        assert code == 0, err
        pages.append(fragments(out.read_text(encoding="utf-8"))[0])
    assert seen == [([100.0, 110.0, 120.0], [50.0, 60.0, 70.0]), (None, None)]
    assert pages[0]["sim_map"]["b64"] != pages[1]["sim_map"]["b64"]
