"""Optimisers, learning-rate schedules and gradient clipping shared by both training stages.

Both stages optimise manually (see `inpainting.py`), so the schedule is stepped and gradients are
clipped by the systems themselves, once per generator step; `trainer.max_steps` sets the schedule's
length, so a resumed run continues on the same curve.
"""

from __future__ import annotations

import math

import torch

from latentpaint.errors import LatentpaintError

SCHEDULES = ("constant", "cosine")


def schedule_factor(step: int, schedule: str, warmup_steps: int, max_steps: int) -> float:
    """The learning-rate multiplier at `step`: linear warm-up, then constant or cosine decay to zero."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(1, max_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def manual_step(system, optimizer, loss: torch.Tensor, raw: bool = False) -> None:
    """One manual optimisation step of a Lightning `system`: zero_grad, backward, clipping of the gradient
    norm at `trainer.gradient_clip_val` (when set), step.

    With `raw`, the wrapped torch optimizer steps: Lightning counts every LightningOptimizer.step in
    global_step, and discriminators must not, so that max_steps means generator iterations for every preset.
    """
    optimizer.zero_grad(set_to_none=True)
    system.manual_backward(loss)
    clip = system.config["trainer"]["gradient_clip_val"]
    if clip:
        system.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")
    (optimizer.optimizer if raw else optimizer).step()


def adam_with_schedule(
    params, lr: float, optim: dict, max_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """Adam on `params` and its per-step schedule from the `optim` config section."""
    schedule, warmup = optim.get("schedule", "constant"), int(optim.get("warmup_steps", 0))
    if schedule not in SCHEDULES:
        raise LatentpaintError(f"optim.schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}")
    optimizer = torch.optim.Adam(params, lr=lr, betas=tuple(optim.get("betas", (0.9, 0.999))))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: schedule_factor(step, schedule, warmup, max_steps)
    )
    return optimizer, scheduler
