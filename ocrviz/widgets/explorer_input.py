"""The explorer's door: the image a user passes, prepared once into the picture shown and the model's input.

Both leave here and flow one way (the picture to ``from_cache`` and the page, the
input to the forward passes, the ERF and ``error_blame``); nothing downstream
converts the image again.

* an array (H x W x 3 uint8, or float, see ``payload.to_uint8_image``): the
  picture is its uint8 form, and the input is that picture normalised with the
  caller's ``mean`` / ``std``, else the model's own (``normalisation.input_normalisation``),
  or ``transform(picture)``;
* a tensor (3 x H x W or 1 x 3 x H x W): fed as given; the picture is its
  display form (rescaled to 0..255).

Example::

    prep = prepare_image(model, image)          # image: H x W x 3 uint8
    prep.picture.shape, prep.x.shape            # (H, W, 3), (1, 3, H, W)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from .payload import to_uint8_image


@dataclass(frozen=True)
class PreparedImage:
    """``picture``: H x W x 3 uint8, what the view shows; ``x``: 1 x 3 x H x W float, what the model sees;
    ``model_default``: ``x`` is ``picture`` normalised as the model itself expects (no transform, mean or
    std from the caller), so analyses that normalise a uint8 image themselves (``error_blame``) agree."""

    picture: np.ndarray
    x: Any
    model_default: bool


def prepare_image(model: Any, image: Any, *, transform: Callable[[Any], Any] | None = None,
                  mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> PreparedImage:
    """The picture and the model input of ``image``, each made once (see the module docstring)."""
    if hasattr(image, "detach"):                                                 # a tensor: the model's input as is
        x = image.detach().float()
        x = x[None] if x.ndim == 3 else x                                        # 1 x 3 x H x W
        return PreparedImage(to_uint8_image(x), x, False)
    picture = to_uint8_image(image)                                              # H x W x 3 uint8, the one conversion
    model_default = transform is None and mean is None and std is None
    if transform is not None:
        return PreparedImage(picture, transform(picture), False)
    from ocrviz.normalisation import input_normalisation, normalise

    return PreparedImage(picture, normalise(picture, *input_normalisation(model, mean, std)), model_default)


def _model_input(image: Any, transform: Any, mean: Any, std: Any) -> Any:
    """1 x 3 x H x W float input: a tensor as given, else (image / 255 - mean) / std (``mean``/``std``
    as given: None is ImageNet's).  Kept for callers of the earlier helper; ``prepare_image`` is the door."""
    if hasattr(image, "detach"):
        x = image.detach().float()
        return x[None] if x.ndim == 3 else x                                     # 1 x 3 x H x W
    picture = to_uint8_image(image)
    if transform is not None:
        return transform(picture)
    from ocrviz.normalisation import normalise

    return normalise(picture, mean, std)                                         # 1 x 3 x H x W
