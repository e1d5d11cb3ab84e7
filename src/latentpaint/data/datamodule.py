"""The Lightning data module: training images, masks and a loader that resumes at the right sample."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import lightning as L
import torch
from torch.utils.data import DataLoader, Subset

from latentpaint.data.bank import PrefillBank, is_bank
from latentpaint.data.datasets import EvaluationDataset, StepSampler, TrainingDataset, batch_to_float
from latentpaint.errors import LatentpaintError, quoted

AUTO_WORKERS = "auto"
MAX_AUTO_WORKERS = 8  # enough to keep a GPU step fed with JPEG decoding and host prefills


def auto_workers(local_devices: int = 1, cuda: bool | None = None) -> int:
    """Loader workers per training process for `data.num_workers: auto`: the CPU cores shared by the
    processes of this machine, at most 8 each, when training on CUDA; 2 (at most the cores) on a CPU, where
    workers compete with the step itself for the cores."""
    cores = os.cpu_count() or 1
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if not cuda:
        return min(2, cores)
    return max(1, min(MAX_AUTO_WORKERS, cores // max(1, local_devices)))


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
        prefill: str = "none",
    ):
        super().__init__()
        # "auto" is resolved with the trainer's device count (`workers`)
        workers_ok = num_workers == AUTO_WORKERS or (isinstance(num_workers, int) and num_workers >= 0)
        if batch_size < 1 or not workers_ok or max_steps < 1:
            raise LatentpaintError(
                f"data needs batch_size >= 1, num_workers >= 0 or auto and max_steps >= 1 "
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
        self.prefill = prefill  # a host prefill is computed in the workers (TrainingDataset)
        self.val = val  # a LaMa-layout folder scored during training (training/validation.py), or None
        self.dataset: TrainingDataset | PrefillBank | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is None and is_bank(
            self.train
        ):  # crops, masks and prefills drawn once (data/bank.py)
            self.dataset = PrefillBank(self.train, self.size, self.mask_preset, self.prefill, self.seed)
        if self.dataset is None:
            self.dataset = TrainingDataset(
                self.train, self.size, self.mask_preset, self.seed, max_short_side=self.max_short_side,
                augmentation=self.augmentation, prefill=self.prefill, uint8=True,
            )  # fmt: skip

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        # the loader ships uint8 (a quarter of the bytes to pin and copy); floats are made on the device
        return batch_to_float(batch) if isinstance(batch, dict) else batch

    def workers(self) -> int:
        """`num_workers`, with `auto` resolved for this trainer's devices on this machine."""
        if self.num_workers != AUTO_WORKERS:
            return self.num_workers
        trainer = self.trainer
        local = trainer.num_devices if trainer is not None else 1
        cuda = trainer is not None and trainer.strategy.root_device.type == "cuda"
        return auto_workers(local, cuda if trainer is not None else None)

    def train_dataloader(self) -> DataLoader:
        self.setup()
        workers = self.workers()
        if workers > 0:
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
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def val_dataloader(self) -> DataLoader | list:
        if not self.val:
            return []
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        return validation_loader(self.val, rank, world)


def validation_loader(folder: str | Path, rank: int = 0, world_size: int = 1) -> DataLoader:
    """The `data.val` folder (LaMa layout), one pair per batch: validation images keep their own sizes, as in
    `latentpaint evaluate`. With several processes each takes every `world_size`-th pair from `rank` on;
    training/validation.py gathers their scores and FID features before computing."""
    dataset = EvaluationDataset(folder)
    if len(dataset) < 2:
        raise LatentpaintError(
            f"validation folder {quoted(folder)} has {len(dataset)} mask; FID (hence ssim_fid100_f1) needs at least 2"
        )
    if world_size > 1:
        dataset = Subset(dataset, range(rank, len(dataset), world_size))
    return DataLoader(dataset, batch_size=1, shuffle=False)
