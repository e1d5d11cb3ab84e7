"""LaMa's training augmentation (`transform_variant: distortions`), rebuilt with albumentations 2.x.

LaMa composed imgaug-era albumentations transforms (IAAPerspective, IAAAffine, ...) that no longer exist;
this is the same chain with today's equivalents and LaMa's parameters. Where albumentations 2 changed a
default that mattered (borders are now constant black), the old default is set explicitly. albumentations
is imported only when the augmentation is on, so `data.augmentation: none` never needs it.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from latentpaint.errors import LatentpaintError

AUGMENTATIONS = ("none", "distortions")


def lama_distortions(size: int) -> Callable[[np.ndarray, int], np.ndarray]:
    """`augment(image, seed) -> crop`: LaMa's distortions ending in a random `size` x `size` crop.

    The chain draws from its own generators, re-seeded per call, so a sample's augmentation depends only
    on `seed` (not on the worker or on how many samples came before it).
    """
    try:
        import albumentations as A
    except ModuleNotFoundError:
        raise LatentpaintError(
            "data.augmentation=distortions needs the albumentations package: pip install 'albumentations>=2,<3'"
        ) from None
    reflect = cv2.BORDER_REFLECT_101  # imgaug's 'reflect' and the old Pad/OpticalDistortion default
    chain = A.Compose(
        [
            A.Perspective(scale=(0.0, 0.06)),  # IAAPerspective: constant border, size kept
            A.Affine(scale=(0.7, 1.3), rotate=(-40, 40), shear=(-0.1, 0.1), border_mode=reflect),
            A.PadIfNeeded(min_height=size, min_width=size, border_mode=reflect),
            A.OpticalDistortion(border_mode=reflect),
            A.RandomCrop(size, size),
            A.HorizontalFlip(),
            A.CLAHE(),
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2),
            A.HueSaturationValue(hue_shift_limit=5, sat_shift_limit=30, val_shift_limit=5),
        ]
    )

    def augment(image: np.ndarray, seed: int) -> np.ndarray:
        chain.set_random_seed(seed)
        return chain(image=np.ascontiguousarray(image))["image"]

    return augment


def create_augmentation(name: str, size: int) -> Callable[[np.ndarray, int], np.ndarray] | None:
    """The augmentation called `name` (None for 'none', where the dataset's own crop and flip apply)."""
    if name == "none":
        return None
    if name == "distortions":
        return lama_distortions(size)
    raise LatentpaintError(f"unknown data.augmentation {name!r}: choose one of {', '.join(AUGMENTATIONS)}")
