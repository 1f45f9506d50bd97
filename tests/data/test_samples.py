"""The shipped samples are exactly what the generator makes from their seeds."""
from __future__ import annotations

import numpy as np

from ocrviz.data.samples import SAMPLES, load_sample
from ocrviz.data.dataset import VAL_SEEDS, TRAIN_SEEDS
from ocrviz.data.toycity import make_scene


def test_samples_match_generator_and_come_from_validation_seeds() -> None:
    for name, (seed, h, w) in SAMPLES.items():
        s = load_sample(name)
        assert seed in VAL_SEEDS and seed not in TRAIN_SEEDS
        fresh = make_scene(seed, h, w)
        assert s.image.shape == (h, w, 3) and s.seed == seed
        for field in ("image", "labels", "instances", "ambiguous", "ambiguity"):
            assert np.array_equal(getattr(s, field), getattr(fresh, field)), (name, field)


def test_the_800_sample_gives_the_seed_text_100x100_map() -> None:
    s = load_sample("street_800")
    assert (s.image.shape[0] // 8, s.image.shape[1] // 8) == (100, 100)
