"""ToyCity generator: determinism, label/instance consistency, designed ambiguities."""
from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from ocrviz.data import toycity as tc
from ocrviz.data.ambiguity import cue_free
from ocrviz.data.folders import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE

H, W = 128, 256  # small scenes keep the file fast


@pytest.fixture(scope="module")
def scenes() -> list[tc.Scene]:
    return [tc.make_scene(s, H, W) for s in range(20)]


@pytest.fixture(scope="module")
def hand_checked() -> tc.Scene:
    # Seed 30 at the default size: a pedestrian's view from a wide dark sidewalk
    # (the whole lower image), a blue-grey road on the right with a red car
    # (side view) parked close, facades with windows on both sides.
    return tc.make_scene(30)


def _interior(mask: np.ndarray, k: int = 7) -> np.ndarray:
    """Pixels whose whole k x k neighbourhood lies inside ``mask``."""
    return sliding_window_view(np.pad(mask, k // 2), (k, k)).all((-1, -2))


def test_same_seed_same_scene_different_seed_different_scene():
    a, b, c = tc.make_scene(7, H, W), tc.make_scene(7, H, W), tc.make_scene(8, H, W)
    for name in ("image", "labels", "instances", "ambiguous", "ambiguity"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(a.labels, c.labels)


def test_shapes_dtypes_and_any_size():
    for h, w in [(64, 128), (96, 200), (256, 512)]:
        s = tc.make_scene(3, h, w)
        assert s.image.shape == (h, w, 3) and s.image.dtype == np.uint8
        assert s.labels.shape == (h, w) and s.labels.dtype == np.int64
        assert s.instances.dtype == np.int32 and s.ambiguous.dtype == np.bool_
        np.testing.assert_array_equal(s.ambiguous, s.ambiguity > 0)


def test_layout_is_in_metres_so_sizes_agree():
    big, small = tc.make_scene(11, 256, 512), tc.make_scene(11, 128, 256)
    assert (big.labels[::2, ::2] == small.labels).mean() > 0.9


@pytest.mark.parametrize("seed", [-1, 1.5, True, "3"])
def test_bad_seed_is_rejected(seed):
    with pytest.raises(ValueError, match="seed"):
        tc.make_scene(seed, H, W)


def test_too_small_is_rejected():
    with pytest.raises(ValueError, match="32 x 32"):
        tc.make_scene(0, 16, 64)


def test_labels_in_range_and_every_class_appears(scenes):
    seen = np.zeros(tc.NUM_CLASSES, bool)
    for s in scenes:
        assert s.labels.min() >= 0 and s.labels.max() < tc.NUM_CLASSES
        seen[np.unique(s.labels)] = True
    missing = [tc.CLASSES[i] for i in np.flatnonzero(~seen)]
    assert not missing, f"classes never drawn in 20 scenes: {missing}"


def test_instances_map_to_one_class_and_things_have_instances(scenes):
    things = [tc.CLASSES.index(c) for c in tc.THING_CLASSES]
    stuff = [tc.ROAD, tc.SIDEWALK, tc.SKY]
    for s in scenes:
        ids = s.instances.ravel()
        labels = s.labels.ravel()
        pairs = np.unique(np.stack([ids, labels]), axis=1)       # 2 x (distinct id/label pairs)
        objects = pairs[:, pairs[0] > 0]
        assert len(np.unique(objects[0])) == objects.shape[1], f"seed {s.seed}: an instance spans two classes"
        assert (ids[np.isin(labels, things)] > 0).all()
        assert (ids[np.isin(labels, stuff)] == 0).all()
    assert sum(len(np.unique(s.instances[s.labels == tc.CAR])) for s in scenes) >= 20


def test_classes_are_a_cityscapes_subset_in_order():
    assert tc.CITYSCAPES_TRAIN_IDS == sorted(tc.CITYSCAPES_TRAIN_IDS)
    for name, colour, tid in zip(tc.CLASSES, tc.PALETTE, tc.CITYSCAPES_TRAIN_IDS):
        assert CITYSCAPES_CLASSES[tid] == name and CITYSCAPES_PALETTE[tid] == colour


def test_colorize():
    labels = np.array([[0, 8], [255, 6]])
    out = tc.colorize(labels)
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    assert tuple(out[0, 0]) == tc.PALETTE[0] and tuple(out[0, 1]) == tc.PALETTE[8]
    assert tuple(out[1, 0]) == (0, 0, 0) and tuple(out[1, 1]) == (70, 130, 180)


def test_ambiguity_codes_match_their_classes(scenes):
    allowed = {1: {tc.CAR, tc.BUILDING}, 2: {tc.ROAD, tc.SIDEWALK}, 3: {tc.SIGN, tc.BUILDING}}
    for s in scenes:
        assert s.ambiguous.mean() > 0.15, f"seed {s.seed}: ambiguous share only {s.ambiguous.mean():.2f}"
        for code, classes in allowed.items():
            assert set(np.unique(s.labels[s.ambiguity == code])) <= classes
        # walls, persons, poles, sky and foliage are never ambiguous
        for cls in (tc.PERSON, tc.POLE, tc.SKY, tc.VEGETATION):
            assert not s.ambiguous[s.labels == cls].any()
    both = [{int(c) for c in np.unique(s.labels[s.ambiguity == 1])} for s in scenes]
    assert sum(b == {tc.CAR, tc.BUILDING} for b in both) >= 5


def test_hand_checked_windows_same_look_on_cars_and_buildings(hand_checked):
    s = hand_checked
    car = (s.ambiguity == 1) & (s.labels == tc.CAR)
    bld = (s.ambiguity == 1) & (s.labels == tc.BUILDING)
    assert car.sum() > 800 and bld.sum() > 5000
    # large: a 7x7 window (what a tiny receptive field sees) fits inside the glass
    assert _interior(car).sum() > 300 and _interior(bld).sum() > 1000
    mc, mb = s.image[car].astype(float).mean(0), s.image[bld].astype(float).mean(0)
    sc, sb = s.image[car].astype(float).std(0), s.image[bld].astype(float).std(0)
    assert np.abs(mc - mb).max() < 12, (mc, mb)
    assert np.all(np.abs(sc / sb - 1) < 0.2), (sc, sb)
    # ...while the car body around the glass is a different colour from the glass
    body = (s.labels == tc.CAR) & ~s.ambiguous
    assert np.abs(s.image[body].astype(float).mean(0) - mc).max() > 40


def test_hand_checked_road_and_sidewalk_one_texture_scene_colours(hand_checked):
    s = hand_checked
    road = (s.ambiguity == 2) & (s.labels == tc.ROAD)
    walk = (s.ambiguity == 2) & (s.labels == tc.SIDEWALK)
    assert road.sum() > 4000 and walk.sum() > 30000
    # in this scene the two pavings differ in colour (that is what OCR's regions can match) ...
    mr, mw = s.image[road].astype(float).mean(0), s.image[walk].astype(float).mean(0)
    assert np.abs(mr - mw).max() > 20, (mr, mw)
    # ... with the same texture (grain and blotches) on both
    assert np.all(np.abs(s.image[road].std(0) / s.image[walk].std(0) - 1) < 0.35)
    # the kerb: thin, labelled sidewalk, not ambiguous, and lighter than both pavings
    kerb = (s.labels == tc.SIDEWALK) & ~s.ambiguous & (s.instances == 0)
    assert 100 < kerb.sum() < 0.01 * kerb.size
    assert (s.image[kerb].astype(float).mean(0) - np.maximum(mr, mw)).min() > 20
    assert _interior(kerb, 5).sum() == 0                          # never 5 px thick
    # the pedestrian viewpoint: the bottom rows are sidewalk far from any cue
    assert (s.labels[-20:] == tc.SIDEWALK).mean() > 0.95
    assert (cue_free(s.ambiguity) & walk).sum() > 3000


def test_road_and_sidewalk_colours_come_from_one_palette():
    """Over many scenes the road and the sidewalk take each paving colour about
    equally often: a colour alone does not say which class it is."""
    road, walk = [], []
    for seed in range(300, 420):
        s = tc.make_scene(seed, 64, 128)
        for cls, out in ((tc.ROAD, road), (tc.SIDEWALK, walk)):
            m = (s.ambiguity == 2) & (s.labels == cls)
            if m.sum() > 50:
                out.append(s.image[m].astype(float).mean(0))
    road, walk = np.array(road), np.array(walk)
    assert len(road) > 100 and len(walk) > 100
    assert np.abs(road.mean(0) - walk.mean(0)).max() < 12, (road.mean(0), walk.mean(0))
    assert np.all(np.abs(road.std(0) / walk.std(0) - 1) < 0.25), (road.std(0), walk.std(0))


def test_pedestrian_viewpoints_give_cue_free_sidewalk():
    """About a third of the scenes are shot from a sidewalk: cue-free pixels
    (no other appearance within 77 px) are then sidewalk, not only road."""
    counts = np.zeros(2)
    views = 0
    for seed in range(500, 530):
        s = tc.make_scene(seed)
        m = cue_free(s.ambiguity)
        counts += [(m & (s.labels == tc.ROAD)).sum(), (m & (s.labels == tc.SIDEWALK)).sum()]
        views += bool(s.labels[-1, 256] == tc.SIDEWALK)              # bottom centre
    assert 4 <= views <= 20, views
    assert counts[1] / counts.sum() > 0.15, counts


def _box5(x: np.ndarray) -> np.ndarray:
    """Mean over each 5 x 5 neighbourhood (edge-padded) via an integral image."""
    c = np.pad(np.pad(x, ((2, 2), (2, 2), (0, 0)), mode="edge").cumsum(0).cumsum(1), ((1, 0), (1, 0), (0, 0)))
    return (c[5:, 5:] - c[:-5, 5:] - c[5:, :-5] + c[:-5, :-5]) / 25.0


def _patch_features(img: np.ndarray) -> np.ndarray:
    x = img.astype(np.float64)
    mean = _box5(x)                                               # H x W x 3
    std = np.sqrt(np.maximum(_box5(x * x) - mean ** 2, 0))
    return np.concatenate([mean, std], -1)                        # H x W x 6


@pytest.mark.parametrize("code,a,b,limit", [(2, tc.ROAD, tc.SIDEWALK, 0.6), (1, tc.CAR, tc.BUILDING, 0.7)])
def test_a_5x5_patch_classifier_cannot_tell_the_ambiguous_classes_apart(code, a, b, limit):
    """LDA on 5x5 patch colour mean/std, trained on some scenes, tested on others:
    balanced accuracy stays near chance (0.5) on the designed ambiguities."""
    def collect(seeds):
        xa, xb = [], []
        for seed in seeds:
            s = tc.make_scene(seed, H, W)
            f = _patch_features(s.image)
            m = s.ambiguity == code
            xa.append(f[m & (s.labels == a)])
            xb.append(f[m & (s.labels == b)])
        return np.concatenate(xa), np.concatenate(xb)
    (ta, tb), (va, vb) = collect(range(100, 108)), collect(range(200, 208))
    ma, mb = ta.mean(0), tb.mean(0)
    cov = np.cov(np.concatenate([ta - ma, tb - mb]).T) + 1e-3 * np.eye(6)
    w = np.linalg.solve(cov, ma - mb)
    cut = w @ (ma + mb) / 2
    acc = 0.5 * ((va @ w > cut).mean() + (vb @ w <= cut).mean())
    assert 0.3 < acc < limit, f"balanced accuracy {acc:.3f}"
