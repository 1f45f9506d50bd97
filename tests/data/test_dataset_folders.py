"""Dataset folder readers on tiny trees built in tmp_path."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ocrviz.data import folders as F


def _png(path: Path, arr: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path)


def _image(h: int = 4, w: int = 6, value: int = 90) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


# labelIds -> trainIds: road 7->0, sidewalk 8->1, car 26->13, bicycle 33->18,
# unlabeled 0 -> 255, parking 9 (not evaluated) -> 255, sky 23->10
IDS = np.array([[7, 8, 26, 33, 0, 9], [23, 24, 11, 21, 17, 20]] * 2, np.uint8)
TRAIN = np.array([[0, 1, 13, 18, 255, 255], [10, 11, 2, 8, 5, 7]] * 2)


def _cityscapes(root: Path) -> None:
    for city, n in [("aachen", 2), ("bonn", 1)]:
        for i in range(n):
            name = f"{city}_{i:06d}_000019"
            _png(root / "leftImg8bit" / "val" / city / f"{name}_leftImg8bit.png", _image(value=10 * i))
            _png(root / "gtFine" / "val" / city / f"{name}_gtFine_labelIds.png", IDS)


def test_cityscapes_labelids_become_trainids(tmp_path):
    _cityscapes(tmp_path)
    ds = F.CityscapesFolder(tmp_path, split="val")
    assert len(ds) == 3
    image, labels, name = ds[0]
    assert name == "aachen_000000_000019"
    assert image.shape == (4, 6, 3) and image.dtype == np.uint8
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, TRAIN)
    assert [ds[i][2] for i in range(3)] == ["aachen_000000_000019", "aachen_000001_000019", "bonn_000000_000019"]


def test_cityscapes_tables():
    assert len(F.CITYSCAPES_CLASSES) == len(F.CITYSCAPES_PALETTE) == 19
    assert F.CITYSCAPES_PALETTE[F.CITYSCAPES_CLASSES.index("car")] == (0, 0, 142)
    assert (F.LABELID_TO_TRAINID != 255).sum() == 19
    np.testing.assert_array_equal(F.labelids_to_trainids(np.array([-1, 7, 33, 34])), [255, 0, 18, 255])


def test_cityscapes_train_ids_file_is_used_as_is(tmp_path):
    name = "ulm_000000_000019"
    _png(tmp_path / "leftImg8bit" / "val" / "ulm" / f"{name}_leftImg8bit.png", _image())
    _png(tmp_path / "gtFine" / "val" / "ulm" / f"{name}_gtFine_labelTrainIds.png", TRAIN.astype(np.uint8))
    np.testing.assert_array_equal(F.CityscapesFolder(tmp_path, "val")[0][1], TRAIN)


def test_cityscapes_missing_folders_and_labels(tmp_path):
    with pytest.raises(FileNotFoundError, match="(?s)leftImg8bit.*Expected layout.*gtFine_labelIds"):
        F.CityscapesFolder(tmp_path, "val")
    _png(tmp_path / "leftImg8bit" / "val" / "ulm" / "ulm_1_leftImg8bit.png", _image())
    with pytest.raises(FileNotFoundError, match="gtFine"):
        F.CityscapesFolder(tmp_path, "val")
    (tmp_path / "gtFine" / "val" / "ulm").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="1 Cityscapes label files missing.*ulm_1_gtFine_labelIds.png"):
        F.CityscapesFolder(tmp_path, "val")


def test_ade20k_shift_and_ignore(tmp_path):
    base = tmp_path / "ADEChallengeData2016"
    ann = np.array([[0, 1, 2], [150, 13, 0]], np.uint8)
    for stem in ("ADE_val_00000001", "ADE_val_00000002"):
        path = base / "images" / "validation" / f"{stem}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_image(2, 3)).save(path, "JPEG")
        _png(base / "annotations" / "validation" / f"{stem}.png", ann)
    for root in (tmp_path, base):                                 # either folder works as root
        ds = F.ADE20KFolder(root, "validation")
        image, labels, name = ds[1]
        assert len(ds) == 2 and name == "ADE_val_00000002" and image.shape == (2, 3, 3)
        np.testing.assert_array_equal(labels, [[255, 0, 1], [149, 12, 255]])
    assert F.ADE20K_CLASSES[12] == "person" and F.ADE20K_CLASSES[149] == "flag"
    with pytest.raises(ValueError, match="training.*validation"):
        F.ADE20KFolder(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match="annotations"):
        F.ADE20KFolder(tmp_path / "elsewhere", "training")


def test_ade20k_tables():
    assert len(F.ADE20K_CLASSES) == 150 == len(set(F.ADE20K_CLASSES))
    assert F.ADE20K_CLASSES[:5] == ["wall", "building", "sky", "floor", "tree"]
    assert len(set(F.ADE20K_PALETTE)) == 150


def test_mask_folder_index_pngs(tmp_path):
    _png(tmp_path / "images" / "b.png", _image(2, 2))
    Image.fromarray(_image(2, 2)).save(tmp_path / "images" / "a.jpg", "JPEG")
    pal = Image.new("P", (2, 2))
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    pal.putdata([0, 1, 2, 255])
    (tmp_path / "masks").mkdir()
    pal.save(tmp_path / "masks" / "a.png")
    _png(tmp_path / "masks" / "b.png", np.array([[3, 3], [0, 1]], np.uint8))
    ds = F.MaskFolder(tmp_path, classes=["bg", "red", "green", "blue"])
    assert [ds[i][2] for i in range(2)] == ["a", "b"]
    np.testing.assert_array_equal(ds[0][1], [[0, 1], [2, 255]])  # P: raw indices, not colours
    np.testing.assert_array_equal(ds[1][1], [[3, 3], [0, 1]])


def _rgb_mask_tree(root: Path, mask: np.ndarray) -> None:
    _png(root / "images" / "x.png", _image(*mask.shape[:2]))
    _png(root / "masks" / "x.png", mask)


RED, GREEN, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 0)


def test_mask_folder_rgb_palette(tmp_path):
    _rgb_mask_tree(tmp_path, np.array([[RED, GREEN], [BLACK, RED]], np.uint8))
    ds = F.MaskFolder(tmp_path, palette=[BLACK, RED, GREEN])
    np.testing.assert_array_equal(ds[0][1], [[1, 2], [0, 1]])
    ds = F.MaskFolder(tmp_path, palette={RED: 0, GREEN: 1, BLACK: 255})
    np.testing.assert_array_equal(ds[0][1], [[0, 1], [255, 0]])


def test_mask_folder_rgb_errors(tmp_path):
    _rgb_mask_tree(tmp_path, np.array([[RED, (1, 2, 3)], [BLACK, (1, 2, 3)]], np.uint8))
    with pytest.raises(ValueError, match=r"1 colour\(s\) not in the palette: \(1, 2, 3\) \(2 px\)"):
        F.MaskFolder(tmp_path, palette=[BLACK, RED])[0]
    with pytest.raises(ValueError, match="RGB mask; pass palette"):
        F.MaskFolder(tmp_path)[0]


def test_mask_folder_layout_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="(?s)images.*Expected layout.*masks/<name>.png"):
        F.MaskFolder(tmp_path)
    _png(tmp_path / "images" / "lonely.png", _image())
    (tmp_path / "masks").mkdir()
    with pytest.raises(FileNotFoundError, match="no mask.*lonely.png"):
        F.MaskFolder(tmp_path)


def test_size_mismatch_is_reported(tmp_path):
    _png(tmp_path / "images" / "x.png", _image(4, 4))
    _png(tmp_path / "masks" / "x.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="same size"):
        F.MaskFolder(tmp_path)[0]
