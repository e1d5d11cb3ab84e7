"""Optimisers, learning-rate schedules and gradient clipping shared by both training stages.

Both stages optimise manually (see `inpainting.py`), so the schedule is stepped and gradients are
clipped by the systems themselves, once per generator step, after 16-mixed's unscaling;
`trainer.max_steps` sets the schedule's length, so a resumed run continues on the same curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from latentpaint.errors import LatentpaintError

SCHEDULES = ("constant", "cosine")  # optim.schedule: after linear warm-up, constant or cosine to zero


def schedule_factor(step: int, schedule: str, warmup_steps: int, max_steps: int) -> float:
    """The learning-rate multiplier at `step`: linear warm-up, then constant or cosine decay to zero."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(1, max_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class OptimiserSettings:
    """What both stages' optimisers need: Adam's rates and betas, the generator's schedule (its length is
    `max_steps`, so a resumed run continues on the same curve) and gradient-norm clipping. A run's config
    gives them as `cfg.optimiser` (training/config.py)."""

    lr: float
    lr_d: float = 1.0e-4
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "constant"
    warmup_steps: int = 0
    max_steps: int = 1000
    gradient_clip_val: float | None = None


def manual_step(system, optimizer, loss: torch.Tensor, raw: bool = False) -> None:
    """One manual optimisation step of a Lightning `system`: zero_grad, backward, step.

    The gradient norm is clipped at the system's `optimiser.gradient_clip_val` (when set) on *unscaled*
    gradients: a Lightning optimizer step unscales first (16-mixed's loss scaler) and then calls the
    system's `on_before_optimizer_step`, which clips (`clip_gradient_norm`); clipping here, before the
    step, would clip the loss-scaled gradients (a true norm of 0.49 became 1.5e-5).

    With `raw`, the wrapped torch optimizer steps: Lightning counts every LightningOptimizer.step in
    global_step, and discriminators must not, so that max_steps means generator iterations for every
    preset. A raw step bypasses the precision plugin, so it clips here and refuses a loss scaler: fp16
    with a discriminator is refused by the run config (training/config.py).
    """
    optimizer.zero_grad(set_to_none=True)
    system.manual_backward(loss)
    if not raw:
        optimizer.step()
        return
    trainer = getattr(system, "_trainer", None)  # None when a test drives the step without a Trainer
    if getattr(getattr(trainer, "precision_plugin", None), "scaler", None) is not None:
        raise LatentpaintError(
            "a discriminator's raw optimizer step cannot run under a loss scaler (16-mixed)"
        )
    clip_gradient_norm(system, optimizer)
    optimizer.optimizer.step()


def clip_gradient_norm(system, optimizer) -> None:
    """Clips the gradient norm of `optimizer`'s parameters at `system.optimiser.gradient_clip_val`, if set.
    Systems call it from `on_before_optimizer_step`, where 16-mixed gradients are already unscaled."""
    clip = system.optimiser.gradient_clip_val
    if clip:
        system.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")


def adam_with_schedule(
    params, settings: OptimiserSettings
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The generator's Adam on `params` and its per-step schedule."""
    s = settings
    if s.schedule not in SCHEDULES:
        raise LatentpaintError(f"optim.schedule must be one of {', '.join(SCHEDULES)}, not {s.schedule!r}")
    optimizer = torch.optim.Adam(params, lr=s.lr, betas=tuple(s.betas))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: schedule_factor(step, s.schedule, s.warmup_steps, s.max_steps)
    )
    return optimizer, scheduler


def discriminator_adam(params, settings: OptimiserSettings) -> torch.optim.Optimizer:
    """A discriminator's Adam: a constant rate, as in LaMa."""
    return torch.optim.Adam(params, lr=settings.lr_d, betas=tuple(settings.betas))
