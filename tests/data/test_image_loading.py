"""Bring-your-own-image: PIL modes, EXIF orientation, damaged files, stride fitting."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from ocrviz.data.dataset import MEAN, STD
from ocrviz.data.images import (ImageLoadError, load_image, pad_to_stride, prepare_image,
                                to_tensor, PAD_RGB)

RGB = np.zeros((6, 10, 3), np.uint8)
RGB[:3] = (200, 30, 10)
RGB[3:] = (20, 120, 240)


def _save(im: Image.Image, path, fmt: str = "PNG", **kw):
    im.save(path, fmt, **kw)
    return path


def _mode(path) -> str:
    with Image.open(path) as im:
        return im.mode


def test_rgb_png_round_trip_without_notes(tmp_path):
    img, notes = load_image(_save(Image.fromarray(RGB), tmp_path / "a.png"))
    np.testing.assert_array_equal(img, RGB)
    assert notes == []


@pytest.mark.parametrize("mode,fmt", [("L", "PNG"), ("LA", "PNG"), ("RGBA", "PNG"), ("P", "PNG"),
                                      ("1", "PNG"), ("CMYK", "TIFF"), ("I", "TIFF"), ("F", "TIFF")])
def test_every_mode_becomes_rgb_with_a_note(tmp_path, mode, fmt):
    path = _save(Image.fromarray(RGB).convert(mode), tmp_path / f"x.{fmt.lower()}", fmt)
    assert _mode(path) == mode
    img, notes = load_image(path)
    assert img.shape == (6, 10, 3) and img.dtype == np.uint8
    assert len(notes) == 1 and mode in notes[0]


def test_palette_colours_are_looked_up_exactly(tmp_path):
    img, _ = load_image(_save(Image.fromarray(RGB).convert("P", palette=Image.ADAPTIVE, colors=4), tmp_path / "p.png"))
    np.testing.assert_array_equal(img, RGB)


def test_transparency_is_composited_on_white(tmp_path):
    rgba = np.dstack([RGB, np.full(RGB.shape[:2], 255, np.uint8)])
    rgba[0, 0, 3] = 0
    img, notes = load_image(_save(Image.fromarray(rgba, "RGBA"), tmp_path / "t.png"))
    assert tuple(img[0, 0]) == (255, 255, 255) and tuple(img[5, 5]) == (20, 120, 240)
    assert "white" in notes[0]


def test_sixteen_bit_is_stretched_to_eight(tmp_path):
    arr = np.array([[0, 1000], [2000, 4000]], np.uint16)
    img, notes = load_image(_save(Image.fromarray(arr), tmp_path / "d.png"))
    assert _mode(tmp_path / "d.png").startswith("I")
    np.testing.assert_array_equal(img[..., 0], [[0, 64], [128, 255]])
    assert (img[..., 0] == img[..., 2]).all() and "[0, 4000]" in notes[0]


def test_float_in_unit_range_is_scaled(tmp_path):
    arr = np.array([[0.0, 0.5], [1.0, 0.25]], np.float32)
    img, _ = load_image(_save(Image.fromarray(arr, "F"), tmp_path / "f.tiff", "TIFF"))
    np.testing.assert_array_equal(img[..., 1], [[0, 128], [255, 64]])


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((4, 8, 3), np.uint8)
    arr[0, 0] = (255, 0, 0)                                       # red marks the stored top-left
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6                                              # "rotate 90 CW to display"
    img, notes = load_image(_save(im, tmp_path / "r.png", exif=exif.tobytes()))
    assert img.shape == (8, 4, 3)
    assert tuple(img[0, -1]) == (255, 0, 0)                       # now top-right
    assert any("EXIF orientation 6" in n for n in notes)


def test_file_objects_and_bytes(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(RGB).save(buf, "PNG")
    np.testing.assert_array_equal(load_image(buf.getvalue())[0], RGB)
    buf.seek(0)
    np.testing.assert_array_equal(load_image(buf)[0], RGB)


def test_truncated_file_names_the_file(tmp_path):
    big = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    path = _save(Image.fromarray(big), tmp_path / "cut.png")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="cut.png.*truncated or damaged"):
        load_image(path)


def test_text_file_is_rejected_clearly(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not an image\n")
    with pytest.raises(ImageLoadError, match="notes.txt.*not an image.*PNG, JPEG") as err:
        load_image(path)
    assert isinstance(err.value, ValueError)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="nowhere.png"):
        load_image("/nonexistent/nowhere.png")


def test_pad_to_stride_numpy_and_torch():
    out = pad_to_stride(np.ones((250, 250, 3), np.uint8), 8, (1, 2, 3))
    assert out.shape == (256, 256, 3)
    assert tuple(out[255, 255]) == (1, 2, 3) and tuple(out[0, 0]) == (1, 1, 1)
    t = pad_to_stride(torch.ones(2, 3, 17, 24), 8)
    assert t.shape == (2, 3, 24, 24) and t[..., 17:, :].abs().sum() == 0
    same = np.zeros((16, 8))
    assert pad_to_stride(same, 8) is same


def test_prepare_pad_policy_records_and_crops_back():
    img = np.random.default_rng(1).integers(0, 255, (250, 301, 3), dtype=np.uint8)
    x, prep = prepare_image(img, output_stride=8, max_side=1024, policy="pad")
    assert x.shape == (256, 304, 3)
    assert prep.padding == (6, 3) and prep.scale == (1.0, 1.0) and prep.original_size == (250, 301)
    np.testing.assert_array_equal(x[:250, :301], img)
    assert tuple(x[-1, -1]) == PAD_RGB
    padded = to_tensor(x)[0, :, -1, -1]                           # pad colour normalises to ~0
    assert padded.abs().max() < 0.01
    labels = torch.arange(256 * 304).reshape(1, 256, 304)
    np.testing.assert_array_equal(prep.restore(labels), labels[:, :250, :301])


def test_prepare_resize_policy_shrinks_large_images_and_restores():
    img = np.zeros((3000, 1000, 3), np.uint8)
    x, prep = prepare_image(img, output_stride=8, max_side=1024, policy="resize")
    assert max(x.shape[:2]) <= 1024 and x.shape[0] % 8 == 0 and x.shape[1] % 8 == 0
    assert prep.padding == (0, 0) and prep.scale[0] < 0.35
    assert abs(x.shape[0] / x.shape[1] - 3.0) < 0.05                # aspect kept
    labels = torch.zeros(1, *x.shape[:2], dtype=torch.long)
    labels[:, : x.shape[0] // 2] = 3
    back = prep.restore(labels)
    assert back.shape == (1, 3000, 1000) and back.dtype == torch.long
    assert set(back.unique().tolist()) == {0, 3}
    logits = torch.randn(1, 5, *x.shape[:2])
    assert prep.restore(logits).shape == (1, 5, 3000, 1000)


def test_prepare_rejects_bad_input():
    with pytest.raises(ValueError, match="policy"):
        prepare_image(np.zeros((8, 8, 3), np.uint8), policy="crop")
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        prepare_image(np.zeros((8, 8), np.uint8))


def test_to_tensor():
    img = np.full((4, 8, 3), 255, np.uint8)
    x = to_tensor(img)
    assert x.shape == (1, 3, 4, 8)
    assert torch.allclose(x[0, 2], torch.full((4, 8), (1 - MEAN[2]) / STD[2]))
