"""LaMa's adversarial losses: non-saturating GAN with R1 penalty, and discriminator feature matching."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _resize_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(mask, size=like.shape[-2:], mode="nearest")


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss softplus(-D(fake))."""
    return F.softplus(-fake_logits).mean()


def discriminator_loss(
    real_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    real_images: torch.Tensor,
    mask: torch.Tensor,
    gp_coef: float = 0.001,
    mask_as_fake_target: bool = True,
) -> torch.Tensor:
    """softplus(-D(real)) + R1 * gp_coef + softplus(D(fake)) on the hole.

    With `mask_as_fake_target`, the known region of a fake counts as real, so the discriminator learns
    to find the hole rather than to tell whole images apart. `real_images` must require grad for R1.
    """
    real_loss = F.softplus(-real_logits).mean()
    penalty = real_logits.new_zeros(())
    if gp_coef > 0:
        (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
        penalty = grad.pow(2).flatten(1).sum(1).mean() * gp_coef
    m = _resize_mask(mask, fake_logits)
    fake_loss = F.softplus(fake_logits) * m
    if mask_as_fake_target:
        fake_loss = fake_loss + (1 - m) * F.softplus(-fake_logits)
    return real_loss + penalty + fake_loss.mean()


def feature_matching_loss(
    fake_features: list[torch.Tensor], real_features: list[torch.Tensor]
) -> torch.Tensor:
    """Mean squared distance between discriminator features of fake and real images, averaged over layers."""
    losses = [F.mse_loss(f, r.detach()) for f, r in zip(fake_features, real_features)]
    return torch.stack(losses).mean()
