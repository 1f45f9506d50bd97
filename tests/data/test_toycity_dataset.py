"""ToyCityDataset, seed splits and normalisation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ocrviz.data import dataset as D
from ocrviz.data.ambiguity import cue_free
from ocrviz.data.toycity import NUM_CLASSES, make_scene

H, W = 64, 128


def test_item_fields_and_values():
    ds = D.ToyCityDataset([5, 9], height=H, width=W)
    assert len(ds) == 2
    item = ds[1]
    scene = make_scene(9, H, W)
    assert item["seed"] == 9
    assert item["image"].shape == (3, H, W) and item["image"].dtype == torch.float32
    assert item["labels"].dtype == torch.int64 and item["labels"].shape == (H, W)
    assert item["ambiguous"].dtype == torch.bool
    np.testing.assert_array_equal(item["labels"].numpy(), scene.labels)
    np.testing.assert_array_equal(item["ambiguous"].numpy(), scene.ambiguous)
    np.testing.assert_array_equal(item["ambiguity"].numpy(), scene.ambiguity)
    # the cue-free radius scales with the height: 77 px at 256 rows
    np.testing.assert_array_equal(item["cue_free"].numpy(), cue_free(scene.ambiguity, round(77 * H / 256)))
    assert "cue_free" not in D.ToyCityDataset([9], height=H, width=W, cue_free=False)[0]
    np.testing.assert_array_equal(D.denormalize(item["image"]), scene.image)
    assert int(item["labels"].max()) < NUM_CLASSES


def test_normalize_uses_mean_std_and_round_trips():
    img = np.zeros((2, 3, 3), np.uint8)
    img[..., 0] = 255
    x = D.normalize(img)
    assert x.shape == (3, 2, 3)
    assert torch.allclose(x[0], torch.full((2, 3), (1 - D.MEAN[0]) / D.STD[0]))
    assert torch.allclose(x[1], torch.full((2, 3), -D.MEAN[1] / D.STD[1]))
    batch = np.stack([make_scene(1, 32, 48).image, make_scene(2, 32, 48).image])
    xb = D.normalize(batch)
    assert xb.shape == (2, 3, 32, 48)
    np.testing.assert_array_equal(D.denormalize(xb), batch)
    with pytest.raises(ValueError, match="H x W x 3"):
        D.normalize(np.zeros((3, 8, 8), np.uint8))


def test_splits_are_fixed_and_disjoint():
    assert D.TRAIN_SEEDS.stop <= D.VAL_SEEDS.start
    assert list(D.val_split(3)) == [D.VAL_SEEDS[0], D.VAL_SEEDS[1], D.VAL_SEEDS[2]]
    assert len(D.val_split()) == len(D.VAL_SEEDS) == 200
    for bad in (0, 201):
        with pytest.raises(ValueError, match="val_split"):
            D.val_split(bad)


def test_bad_seeds_argument():
    with pytest.raises(TypeError, match="range"):
        D.ToyCityDataset(10)
    with pytest.raises(ValueError, match="non-negative"):
        D.ToyCityDataset([3, -1])
    with pytest.raises(IndexError):
        D.ToyCityDataset(range(2), H, W)[2]


def test_augment_flips_labels_with_the_image():
    ds = D.ToyCityDataset([4], H, W, augment=True)
    scene = make_scene(4, H, W)
    flips = 0
    for _ in range(8):
        item = ds[0]
        flipped = not np.array_equal(item["labels"].numpy(), scene.labels)
        ref_labels = scene.labels[:, ::-1] if flipped else scene.labels
        ref_img = scene.image[:, ::-1] if flipped else scene.image
        np.testing.assert_array_equal(item["labels"].numpy(), ref_labels)
        for key in ("ambiguous", "ambiguity", "instances"):
            ref = getattr(scene, key)
            np.testing.assert_array_equal(item[key].numpy(), ref[:, ::-1] if flipped else ref)
        ref = cue_free(scene.ambiguity, round(77 * H / 256))
        np.testing.assert_array_equal(item["cue_free"].numpy(), ref[:, ::-1] if flipped else ref)
        got = D.denormalize(item["image"]).astype(float).ravel()
        assert np.corrcoef(got, ref_img.astype(float).ravel())[0, 1] > 0.98
        flips += flipped
    assert 0 < flips < 8


def test_dataloader_batches():
    batch = next(iter(DataLoader(D.ToyCityDataset(D.val_split(2), H, W), batch_size=2)))
    assert batch["image"].shape == (2, 3, H, W)
    assert batch["labels"].shape == (2, H, W)
    assert batch["seed"].tolist() == list(D.val_split(2))
