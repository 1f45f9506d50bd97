"""Fixed ToyCity samples shipped in ``data/samples/`` for the notebooks.

Each sample is ``<name>.npz`` holding the fields of a ``Scene`` (``image``,
``labels``, ``instances``, ``ambiguous``, ``ambiguity``, ``seed``).  They are generated
from validation seeds, so no shipped model was trained on them, and
``python -m ocrviz.data.samples`` rewrites them bit for bit.

``street_800`` is 800 x 800: at output stride 8 its feature map is 100 x 100,
so the seed text's "10000 x K" similarity map is literal.

    >>> sample = load_sample("street_0")        # doctest: +SKIP
    >>> sample.image.shape, sample.labels.shape
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from .dataset import VAL_SEEDS
from .toycity import Scene, make_scene

# name -> (seed, height, width)
SAMPLES: dict[str, tuple[int, int, int]] = {
    "street_0": (VAL_SEEDS[0], 256, 512),
    "street_1": (VAL_SEEDS[1], 256, 512),
    "street_2": (VAL_SEEDS[39], 256, 512),   # brick-red road with parked cars, grey sidewalk:
                                             # cue-free pixels of both (notebook 3)
    "street_3": (VAL_SEEDS[3], 256, 512),
    "street_800": (VAL_SEEDS[4], 800, 800),
}


def samples_dir() -> Path:
    env = os.environ.get("OCRVIZ_DATA")
    return (Path(env) if env else Path(__file__).resolve().parents[2] / "data") / "samples"


def load_sample(name: str) -> Scene:
    """A shipped sample as a ``Scene`` (image H x W x 3 uint8, labels, instances, ambiguous)."""
    if name not in SAMPLES:
        raise ValueError(f"unknown sample {name!r}; available: {', '.join(SAMPLES)}")
    path = samples_dir() / f"{name}.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; regenerate with `python -m ocrviz.data.samples`")
    with np.load(path) as z:
        return Scene(**{k: (int(z[k]) if k == "seed" else z[k]) for k in z.files})


def write_samples(folder: Path | None = None) -> list[Path]:
    folder = Path(folder) if folder else samples_dir()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (seed, h, w) in SAMPLES.items():
        s = make_scene(seed, h, w)
        np.savez_compressed(folder / f"{name}.npz", image=s.image, labels=s.labels, instances=s.instances,
                            ambiguous=s.ambiguous, ambiguity=s.ambiguity, seed=s.seed)
        written.append(folder / f"{name}.npz")
    return written


if __name__ == "__main__":
    for p in write_samples(Path(sys.argv[1]) if len(sys.argv) > 1 else None):
        print(p)
