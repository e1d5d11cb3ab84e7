"""Prefill banks: training crops, their masks and their host prefills, computed once and read by every step.

A texture prefill (FSR, PatchMatch, shift-map: models/texture_fill.py) takes 0.05-1 s per 128 px crop on a
CPU core, longer than a step of the CPU recipe: computed per batch, the loader would set the pace. `latentpaint
data bank` draws `count` samples of `TrainingDataset` (the same seeded crops, flips and masks a run would
draw), fills them in DataLoader workers once and writes them to one .npz file; a run with `data.train:
BANK.npz` then trains from it (`PrefillBank`): each epoch a seeded permutation, each sample flipped at random.

A bank holds numpy arrays only and is read with `allow_pickle=False`, so loading one runs no code. Its
size, mask preset and prefill are recorded in it and checked against the run's config.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from latentpaint.errors import LatentpaintError, quoted
from latentpaint.files import atomic_write
from latentpaint.models.prefill import HOST_PREFILLS

BANK_SUFFIX = ".npz"
ARRAYS = ("images", "masks", "prefills")  # uint8 (N, S, S, 3), (N, S, S) 0/1, (N, S, S, 3)
FACTS = ("size", "mask_preset", "prefill")  # 0-d arrays: what the bank was drawn for


def is_bank(source: str | Path) -> bool:
    """Whether `data.train` names a bank file rather than a folder of images (or builtin)."""
    return str(source).lower().endswith(BANK_SUFFIX)


def build_bank(
    source: str | Path, out: str | Path, size: int, count: int, mask_preset: str, prefill: str,
    seed: int = 0, workers: int = 0, batch_size: int = 16,
) -> dict:  # fmt: skip
    """Draws `count` training samples of `source` (a folder or builtin) with their `prefill` and writes
    the bank to `out` atomically. Returns {"samples", "seconds", "bytes"}."""
    from latentpaint.data.datasets import TrainingDataset

    if prefill not in HOST_PREFILLS:
        raise LatentpaintError(
            f"--prefill {quoted(prefill)} is not a host prefill; choose one of {', '.join(HOST_PREFILLS)}"
        )
    dataset = TrainingDataset(source, size, mask_preset, seed, length=count, prefill=prefill, uint8=True)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    start = time.perf_counter()
    parts: dict[str, list[np.ndarray]] = {name: [] for name in ARRAYS}
    for batch in loader:
        parts["images"].append(batch["image"].permute(0, 2, 3, 1).numpy())
        parts["masks"].append(batch["mask"][:, 0].numpy())
        parts["prefills"].append(batch["prefill"].permute(0, 2, 3, 1).numpy())
    arrays = {name: np.ascontiguousarray(np.concatenate(chunks)) for name, chunks in parts.items()}
    facts = {"size": np.array(size), "mask_preset": np.array(mask_preset), "prefill": np.array(prefill)}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a bare temp name
            np.savez(f, **arrays, **facts)

    atomic_write(out, write)
    return {
        "samples": count,
        "seconds": time.perf_counter() - start,
        "bytes": sum(a.nbytes for a in arrays.values()),
    }


def read_bank(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """The arrays and facts of a bank file, checked: one `LatentpaintError` naming the file otherwise."""
    where = f"data.train {quoted(path)}"
    if not Path(path).is_file():
        raise LatentpaintError(f"{where} is not a bank file (latentpaint data bank writes one)")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [name for name in (*ARRAYS, *FACTS) if name not in data.files]
            if missing:
                raise LatentpaintError(f"{where} is not a prefill bank: it lacks {', '.join(missing)}")
            arrays = {name: data[name] for name in ARRAYS}
            facts = {name: data[name].item() for name in FACTS}
    except (OSError, ValueError, EOFError) as exc:
        raise LatentpaintError(f"{where} is not a readable .npz bank ({type(exc).__name__})") from None
    images, masks, prefills = (arrays[name] for name in ARRAYS)
    n, s = len(images), facts["size"]
    shapes_ok = (
        n > 0 and images.shape == (n, s, s, 3) and prefills.shape == images.shape and masks.shape == (n, s, s)
    )
    if not shapes_ok or any(a.dtype != np.uint8 for a in arrays.values()):
        raise LatentpaintError(f"{where}: its arrays are not uint8 samples of {s} px (a damaged bank?)")
    return arrays, facts


class PrefillBank(Dataset):
    """Training items from a bank: what `TrainingDataset(uint8=True)` yields ("image", "mask", "prefill"),
    for `length` sample indices (a seeded permutation per pass over the bank, a random flip per index)."""

    def __init__(self, path: str | Path, size: int, mask_preset: str, prefill: str, seed: int = 0,
                 length: int | None = None):  # fmt: skip
        arrays, facts = read_bank(path)
        asked = {"size": size, "mask_preset": mask_preset, "prefill": prefill}
        for name, value in asked.items():
            if facts[name] != value:
                key = {"size": "data.size", "mask_preset": "data.mask_preset", "prefill": "model.prefill"}[
                    name
                ]
                raise LatentpaintError(
                    f"data.train {quoted(path)} was drawn with {name} {facts[name]!r}, but {key} is "
                    f"{value!r}; draw a bank for this run with latentpaint data bank"
                )
        self.images, self.masks, self.prefills = (torch.from_numpy(arrays[name]) for name in ARRAYS)
        self.seed, self.count = seed, len(self.images)
        self.length = length or self.count
        self._perm: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if index < 0:
            raise IndexError(f"sample index must be non-negative, not {index}")
        epoch, position = divmod(int(index), self.count)
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, epoch, 3]).permutation(self.count))
        i = int(self._perm[1][position])
        image, mask, prefill = self.images[i], self.masks[i], self.prefills[i]
        if np.random.default_rng([self.seed, int(index), 4]).random() < 0.5:
            image, mask, prefill = image.flip(1), mask.flip(1), prefill.flip(1)
        return {
            "image": image.permute(2, 0, 1).contiguous(),
            "mask": mask[None].contiguous(),
            "prefill": prefill.permute(2, 0, 1).contiguous(),
        }
