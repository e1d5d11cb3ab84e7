"""The Lightning data module: training images, masks and a loader that resumes at the right sample."""

from __future__ import annotations

from pathlib import Path

import cv2
import lightning as L
import torch
from torch.utils.data import DataLoader

from latentpaint.data.datasets import EvaluationDataset, StepSampler, TrainingDataset
from latentpaint.errors import LatentpaintError, quoted


def completed_batches(trainer: L.Trainer | None) -> int:
    """Training batches this run (restored from its checkpoint) has already consumed; 0 without a trainer."""
    if trainer is None:
        return 0
    # not trainer.global_step: with manual optimisation it counts every optimizer.step(), so a GAN step
    # (generator + discriminator) counts twice. `processed` is restored from the checkpoint before the
    # loader is built and already includes the batch whose end saved the checkpoint.
    return trainer.fit_loop.epoch_loop.batch_progress.total.processed


class InpaintingDataModule(L.LightningDataModule):
    """Seeded training crops + masks, sampled by step so a resumed (or DDP) run sees the same data."""

    def __init__(
        self,
        train: str = "builtin",
        size: int = 256,
        batch_size: int = 8,
        num_workers: int = 0,
        mask_preset: str = "wide",
        seed: int = 0,
        max_steps: int = 1000,
        max_short_side: int | None = None,
        augmentation: str = "none",
        val: str | None = None,
    ):
        super().__init__()
        if batch_size < 1 or num_workers < 0 or max_steps < 1:
            raise LatentpaintError(
                f"data needs batch_size >= 1, num_workers >= 0 and max_steps >= 1 "
                f"(got {batch_size}, {num_workers}, {max_steps})"
            )
        self.train, self.size, self.batch_size = train, size, batch_size
        self.num_workers, self.mask_preset, self.seed, self.max_steps = (
            num_workers,
            mask_preset,
            seed,
            max_steps,
        )
        self.max_short_side = max_short_side
        self.augmentation = augmentation
        self.val = val  # a LaMa-layout folder scored during training (training/validation.py), or None
        self.dataset: TrainingDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is None:
            self.dataset = TrainingDataset(
                self.train, self.size, self.mask_preset, self.seed, max_short_side=self.max_short_side,
                augmentation=self.augmentation,
            )  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        self.setup()
        if self.num_workers > 0:
            # one OpenCV thread per worker process (torch's DataLoader already does this for torch); it must
            # be set here, before the fork: calling it inside a forked worker whose parent's OpenCV pool has
            # run kills or hangs the worker
            cv2.setNumThreads(1)
        trainer = self.trainer
        start = completed_batches(trainer)
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        # max_steps batches from `start`, not max_steps - start: on a mid-epoch resume Lightning restores its
        # in-epoch batch counter (= start) and ends the epoch when it reaches len(loader); a shorter loader
        # would end the epoch early and the next epoch would replay the same indices. Lightning stops at
        # max_steps first, so the surplus is never read.
        sampler = StepSampler.from_step(start, self.max_steps, self.batch_size, rank, world)
        return DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def val_dataloader(self) -> DataLoader | list:
        return validation_loader(self.val) if self.val else []


def validation_loader(folder: str | Path) -> DataLoader:
    """The `data.val` folder (LaMa layout), one pair per batch: validation images keep their own sizes, as in
    `latentpaint evaluate`."""
    dataset = EvaluationDataset(folder)
    if len(dataset) < 2:
        raise LatentpaintError(
            f"validation folder {quoted(folder)} has {len(dataset)} mask; FID (hence ssim_fid100_f1) needs at least 2"
        )
    return DataLoader(dataset, batch_size=1, shuffle=False)
