"""ToyCity as a torch Dataset, the fixed train / validation seed splits, and
the image normalisation every model in ocrviz expects.

    >>> ds = ToyCityDataset(val_split(4), height=64, width=128)
    >>> item = ds[0]
    >>> item["image"].shape, item["labels"].dtype, item["seed"]   # 3 x H x W
    (torch.Size([3, 64, 128]), torch.int64, 10000000)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ocrviz.data.ambiguity import CUE_FREE_RADIUS, cue_free
from ocrviz.data.toycity import make_scene

# ImageNet statistics (0..1 units): the convention of every pretrained backbone,
# so a ToyCity model and a Cityscapes/ADE20K model take the same input.
MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# Fixed splits.  Training draws from TRAIN_SEEDS only; VAL_SEEDS never overlaps it.
TRAIN_SEEDS = range(0, 10**6)
VAL_SEEDS = range(10**7, 10**7 + 200)


def val_split(n: int = len(VAL_SEEDS)) -> range:
    """The first ``n`` validation seeds (1 <= n <= 200); the same every time."""
    if not 1 <= n <= len(VAL_SEEDS):
        raise ValueError(f"val_split(n) takes 1 <= n <= {len(VAL_SEEDS)}, got {n}")
    return VAL_SEEDS[:n]


def normalize(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 images -> normalised float model input.

    H x W x 3 -> 3 x H x W, or N x H x W x 3 -> N x 3 x H x W:
    ``(image / 255 - MEAN) / STD``.  Example: ``normalize(scene.image)``.
    """
    if isinstance(image, np.ndarray):   # copy read-only arrays (PIL's): torch warns on them
        image = np.ascontiguousarray(image) if image.flags.writeable else np.array(image)
    x = torch.as_tensor(image)
    if x.ndim not in (3, 4) or x.shape[-1] != 3:
        raise ValueError(f"normalize expects H x W x 3 or N x H x W x 3 uint8, got shape {tuple(x.shape)}; "
                         "for a C x H x W tensor use x.permute(1, 2, 0) first")
    x = x.movedim(-1, -3).float().div_(255.0)                     # (N x) 3 x H x W
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)
    return (x - mean) / std


def denormalize(x: torch.Tensor) -> np.ndarray:
    """Inverse of ``normalize``: (N x) 3 x H x W float -> (N x) H x W x 3 uint8 numpy."""
    if x.ndim not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"denormalize expects 3 x H x W or N x 3 x H x W, got shape {tuple(x.shape)}")
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)
    img = (x.detach().float().cpu() * std + mean).mul_(255.0).round_().clamp_(0, 255)
    return img.to(torch.uint8).movedim(-3, -1).numpy()            # (N x) H x W x 3


class ToyCityDataset(Dataset):
    """ToyCity scenes for the given seeds, rendered on the fly.

    Item ``i`` is a dict: ``image`` float 3 x H x W (normalised), ``labels``
    int64 H x W, ``ambiguous`` bool H x W, ``ambiguity`` uint8 H x W (the
    kind codes), ``cue_free`` bool H x W (:func:`ocrviz.data.ambiguity.cue_free`,
    radius scaled to the height), ``instances`` int32 H x W, ``seed`` int.
    ``augment=True`` adds a random horizontal flip and a brightness/contrast
    jitter drawn from torch's global RNG (so DataLoader worker seeding
    applies); the scene itself stays fixed by its seed.  ``cue_free=False``
    leaves the ``cue_free`` mask out (training never reads it).
    """

    def __init__(self, seeds: range | Sequence[int], height: int = 256, width: int = 512,
                 augment: bool = False, cue_free: bool = True) -> None:
        if isinstance(seeds, int):
            raise TypeError(f"seeds must be a range or a sequence of ints, got the int {seeds}; "
                            f"did you mean range({seeds})?")
        self.seeds = seeds if isinstance(seeds, range) else [int(s) for s in seeds]
        if len(self.seeds) and min(self.seeds) < 0:
            raise ValueError("seeds must be non-negative")
        self.height, self.width, self.augment = int(height), int(width), bool(augment)
        self.with_cue_free = bool(cue_free)

    def __len__(self) -> int:
        return len(self.seeds)

    def render(self, index: int) -> dict:
        """Item ``index`` before normalisation and augmentation, as numpy arrays:
        ``image`` uint8 H x W x 3 and the maps of ``__getitem__`` (``seed`` an int).

        ``ds[i]["image"]`` is ``normalize(ds.render(i)["image"])`` (without augmentation);
        ``ocrviz.evaluate`` batches these directly and keeps the compact uint8 image."""
        seed = int(self.seeds[index])                             # IndexError past the end
        scene = make_scene(seed, self.height, self.width)
        out = dict(image=scene.image, labels=scene.labels, ambiguous=scene.ambiguous, ambiguity=scene.ambiguity,
                   instances=scene.instances)                      # H x W x 3 uint8, then H x W each
        if self.with_cue_free:
            radius = round(CUE_FREE_RADIUS * self.height / 256)
            out["cue_free"] = cue_free(scene.ambiguity, radius)
        out["seed"] = seed
        return out

    def __getitem__(self, index: int) -> dict:
        arrays = self.render(index)
        seed = arrays.pop("seed")
        image = torch.from_numpy(arrays.pop("image"))             # H x W x 3 uint8
        maps = {k: torch.from_numpy(v) for k, v in arrays.items()}  # each H x W
        if self.augment:
            if torch.rand(()) < 0.5:
                image = image.flip(1)
                maps = {k: v.flip(1) for k, v in maps.items()}
            gain = 0.8 + 0.4 * torch.rand(())
            bias = 20.0 * (torch.rand(()) - 0.5)
            image = (image.float() * gain + bias).round_().clamp_(0, 255).to(torch.uint8)
        return dict(image=normalize(image), **maps, seed=seed)

    def __repr__(self) -> str:
        return (f"ToyCityDataset({len(self)} scenes, {self.height}x{self.width}, "
                f"augment={self.augment})")
