"""The built-in photos split for a quick experiment: most train, `HELD_OUT` are only ever evaluated."""

from __future__ import annotations

from pathlib import Path

import numpy as np

HELD_OUT = ("chelsea", "coffee")  # never seen in training; the rest of the built-in photos train


def prepare_data(out: Path, size: int, seed: int) -> tuple[Path, list[tuple[str, np.ndarray, np.ndarray]]]:
    """Writes the training photos to out/data/train; returns it and the held-out (name, crop, mask) samples."""
    from latentpaint.data.images import builtin_photos, save_image
    from latentpaint.masks import draw_masks, get_mask_generator, square_crop

    train_dir = out / "data" / "train"
    generator = get_mask_generator("thick_256", size)
    held_out = []
    for index, (name, photo) in enumerate(builtin_photos()):
        if name not in HELD_OUT:
            save_image(train_dir / f"{name}.png", photo)
            continue
        crop = square_crop(photo, size)
        (mask,) = draw_masks(generator, size, 1, np.random.default_rng([seed, index]))
        held_out.append((name, crop, mask))
    return train_dir, held_out
