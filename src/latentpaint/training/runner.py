"""Builds the Lightning Trainer for either stage and runs it: logging, checkpoints, resume, DDP."""

from __future__ import annotations

import logging
import shutil
import sys
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from latentpaint.data.datamodule import InpaintingDataModule
from latentpaint.errors import LatentpaintError
from latentpaint.training.autoencoder import build_autoencoder_system
from latentpaint.training.callbacks import (
    CHECKPOINT_DIR,
    AtomicCheckpointIO,
    FiniteLossGuard,
    LogStepProgressBar,
    NetworkEMA,
    ResumableCSVLogger,
    StepTimer,
    last_checkpoint,
)
from latentpaint.training.config import OptimConfig, RunConfig
from latentpaint.training.inpainting import build_inpainting_system, load_autoencoder_state
from latentpaint.training.presets import save_config
from latentpaint.training.validation import validation


def loggers(out_dir: Path, tensorboard: bool) -> list:
    """CSV logs always (the report and demo read them); TensorBoard on request."""
    chosen = [ResumableCSVLogger(out_dir, name="logs", version="")]
    if tensorboard:
        from lightning.pytorch.loggers import TensorBoardLogger

        try:
            chosen.append(TensorBoardLogger(out_dir, name="tensorboard", version=""))
        except ModuleNotFoundError:
            raise LatentpaintError(
                "trainer.tensorboard=true needs the tensorboard package: pip install tensorboard"
            ) from None
    return chosen


def build_system(cfg: RunConfig, restoring: bool = False) -> L.LightningModule:
    """The Lightning system of the config's stage; with `restoring`, the weights come from a checkpoint."""
    if cfg.stage == "autoencoder":
        return build_autoencoder_system(cfg)
    state = load_autoencoder_state(cfg.autoencoder) if cfg.autoencoder and not restoring else None
    return build_inpainting_system(cfg, state, restoring=restoring)


def weight_averaging(optim: OptimConfig) -> list:
    """EMA of the network (Lightning's callback, training/callbacks.py NetworkEMA) when `optim.ema_decay`
    > 0: checkpoints then hold the averaged weights (what inference loads) and keep the raw ones for
    resuming."""
    return [NetworkEMA(decay=optim.ema_decay)] if optim.ema_decay > 0 else []


def find_unused_parameters_for_gans(trainer: L.Trainer, cfg: RunConfig) -> None:
    """DDP with a discriminator: each of the two backward passes of a step (generator, then discriminator)
    leaves the other network's parameters without gradients, which DDP refuses unless it looks for unused
    parameters. Only GAN runs pay for that graph walk; the others keep DDP's default."""
    from lightning.pytorch.strategies import DDPStrategy

    if not (cfg.has_discriminators and isinstance(trainer.strategy, DDPStrategy)):
        return
    kwargs = getattr(trainer.strategy, "_ddp_kwargs", None)
    if not isinstance(kwargs, dict):  # a Lightning whose DDPStrategy keeps its arguments elsewhere
        raise LatentpaintError(
            "GAN presets under DDP need find_unused_parameters: pass --strategy ddp_find_unused_parameters_true"
        )
    kwargs["find_unused_parameters"] = True


def speed_up_cuda(trainer: L.Trainer) -> bool:
    """On a CUDA accelerator: TF32 matmuls (`set_float32_matmul_precision("high")`; cuDNN convolutions
    already use TF32 by default) and cuDNN autotuning, which pays off with training's fixed crop size.
    Numerics then differ from full FP32 at about 1e-3 relative. Nothing changes on other devices.
    Returns whether it applied."""
    from lightning.pytorch.accelerators import CUDAAccelerator

    if not isinstance(trainer.accelerator, CUDAAccelerator):
        return False
    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.benchmark = True
    return True


def train(cfg: RunConfig, out_dir: str | Path, resume: str | Path | None = None) -> Path:
    """Trains the run `cfg` describes (checked where the command read it) into `out_dir`; returns the
    final checkpoint path.

    A run that fails before writing any checkpoint into a folder it created removes that folder: no
    `config.yaml` or `logs/` of a run that never happened.
    """
    out_dir = Path(out_dir)
    new_folder = not out_dir.exists()
    try:
        return _train(cfg, out_dir, resume)
    except BaseException:
        if new_folder and out_dir.is_dir() and not any((out_dir / CHECKPOINT_DIR).glob("*.ckpt")):
            shutil.rmtree(out_dir, ignore_errors=True)
        raise


def _train(cfg: RunConfig, out_dir: Path, resume: str | Path | None) -> Path:
    _quiet_lightning()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    ckpt_path = None
    if resume is not None:
        ckpt_path = Path(resume)
        if not ckpt_path.is_file():
            raise LatentpaintError(f"nothing to resume: {ckpt_path} does not exist")
    system = build_system(cfg, restoring=ckpt_path is not None)
    trainer = build_trainer(cfg, out_dir)
    if trainer.is_global_zero:
        save_config(cfg, out_dir / "config.yaml")
        if getattr(system, "perceptual", None) is not None:  # which network the run's log and report mean
            print(f"perceptual loss: {system.perceptual.description}", file=sys.stderr)
        # a SIGKILL during a checkpoint write leaves its temp file behind (never a broken .ckpt)
        for stale in (out_dir / CHECKPOINT_DIR).glob(".*.tmp"):
            stale.unlink(missing_ok=True)
    trainer.fit(system, datamodule=build_datamodule(cfg), ckpt_path=ckpt_path)
    final = last_checkpoint(out_dir)
    trainer.save_checkpoint(final, weights_only=False)
    return final


def _quiet_lightning() -> None:
    # Lightning's start-up banner (accelerator lines, cloud tips) buries our own output
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    # frozen encoder/decoder are in eval mode on purpose (their BatchNorm statistics must not move)
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # the post-step state it warns about is exactly what resuming needs
    warnings.filterwarnings("ignore", message=r"Using ModelCheckpoint with manual optimization")


def build_datamodule(cfg: RunConfig) -> InpaintingDataModule:
    d = cfg.data
    return InpaintingDataModule(
        train=d.train, size=d.size, batch_size=d.batch_size, num_workers=d.num_workers,
        mask_preset=d.mask_preset, seed=cfg.seed, max_steps=cfg.trainer.max_steps,
        max_short_side=d.max_short_side, augmentation=d.augmentation, val=d.val,
        # a host prefill (Telea) runs in the loader's workers, on the uint8 crops
        prefill=cfg.model.prefill if cfg.stage == "inpainting" else "none",
    )  # fmt: skip


def checkpointing(out_dir: Path, every_n_steps: int) -> ModelCheckpoint:
    """The newest step checkpoint plus `last.ckpt`, every `every_n_steps` steps."""
    return ModelCheckpoint(
        dirpath=out_dir / CHECKPOINT_DIR,
        filename="step{step:06d}",
        auto_insert_metric_name=False,
        every_n_train_steps=every_n_steps,
        save_top_k=1,
        monitor="step",
        mode="max",
        save_last=True,
        # always overwrite last.ckpt: with the counter, a second run in the folder (or a resume through
        # another path) writes last-v1.ckpt and `--resume` would pick up the stale last.ckpt
        enable_version_counter=False,
    )


def build_trainer(cfg: RunConfig, out_dir: Path) -> L.Trainer:
    """The Lightning Trainer of a run: hardware, logging, checkpoints (with data.val also the top-k best by
    validation, training/validation.py), timing, the loss guard and EMA."""
    t = cfg.trainer
    val_callbacks, val_settings = validation(cfg, out_dir / CHECKPOINT_DIR)
    # on a GPU the timer and the guard read the device at log steps and before every checkpoint or
    # validation only
    guard_every = (t.checkpoint_every_n_steps, val_settings.get("val_check_interval"))
    trainer = _trainer(
        default_root_dir=out_dir,
        max_steps=t.max_steps,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=t.precision,
        logger=loggers(out_dir, t.tensorboard),
        callbacks=[
            checkpointing(out_dir, t.checkpoint_every_n_steps),
            *val_callbacks,
            StepTimer(out_dir, cfg.data.batch_size, every=guard_every),
        ]
        + [FiniteLossGuard(every=guard_every)]
        + ([LogStepProgressBar()] if t.progress_bar else [])
        + weight_averaging(cfg.optim),
        plugins=[AtomicCheckpointIO()],
        log_every_n_steps=t.log_every_n_steps,
        enable_progress_bar=t.progress_bar,
        enable_model_summary=False,
        use_distributed_sampler=False,  # our sampler is already rank-aware and resumable
        num_sanity_val_steps=0,
        **val_settings,  # off unless data.val is set (training/validation.py)
    )
    find_unused_parameters_for_gans(trainer, cfg)
    speed_up_cuda(trainer)
    return trainer


def _trainer(**kwargs) -> L.Trainer:
    """L.Trainer(**kwargs); Lightning's refusal of the hardware settings (no GPU for accelerator=gpu, an
    unknown strategy, devices the accelerator cannot take, a missing backend package) is one line."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        return L.Trainer(**kwargs)
    except (MisconfigurationException, ValueError, TypeError, ModuleNotFoundError, RuntimeError) as exc:
        settings = ", ".join(
            f"{k}={kwargs[k]!r}" for k in ("accelerator", "devices", "strategy", "precision")
        )
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise LatentpaintError(f"Lightning cannot train with {settings}: {reason}") from None
