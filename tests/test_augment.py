"""LaMa's training augmentation (`data.augmentation: distortions`): seeded, and it really changes the crop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentpaint.data.augment import create_augmentation, lama_distortions
from latentpaint.data.datasets import TrainingDataset
from latentpaint.errors import LatentpaintError
from latentpaint.training.presets import load_preset


@pytest.fixture
def textured_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):  # smooth gradients plus noise: every geometric or colour change shows up
        y, x = np.mgrid[0:48, 0:64]
        image = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1) + rng.integers(0, 40, (48, 64, 3))
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


def test_same_seed_same_crop_other_seed_other_crop():
    image = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    augment = lama_distortions(32)
    a, b = augment(image, 7), augment(image, 7)
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, augment(image, 8))
    # a fresh chain with the same seed agrees too: nothing depends on the calls made before
    assert np.array_equal(a, lama_distortions(32)(image, 7))


def test_dataset_items_are_deterministic_and_augmented(textured_folder):
    plain = TrainingDataset(textured_folder, size=32, seed=3)
    a = TrainingDataset(textured_folder, size=32, seed=3, augmentation="distortions")
    b = TrainingDataset(textured_folder, size=32, seed=3, augmentation="distortions", cache=False)
    for i in (0, 4, 11):
        x, y, p = a[i], b[i], plain[i]
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["mask"], y["mask"])
        assert x["image"].shape == (3, 32, 32) and 0 <= x["image"].min() and x["image"].max() <= 1
        assert torch.equal(x["mask"], p["mask"])  # the masks are those of the plain dataset
        assert not torch.equal(x["image"], p["image"])  # but the image is distorted
    backward = [a[i]["image"] for i in reversed(range(4))][::-1]
    assert all(torch.equal(a[i]["image"], img) for i, img in enumerate(backward))


def test_config_key_and_presets():
    assert load_preset("pixel-alpha").data.augmentation == "none"
    assert load_preset("lama-full").data.augmentation == "distortions"
    assert load_preset("lama-full-framework").data.augmentation == "distortions"
    with pytest.raises(LatentpaintError, match="data.augmentation"):
        load_preset("pixel-alpha", ["data.augmentation=rotate"])
    with pytest.raises(LatentpaintError, match="unknown data.augmentation"):
        create_augmentation("rotate", 32)
    assert create_augmentation("none", 32) is None
