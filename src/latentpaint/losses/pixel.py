"""Masked pixel L1 (LaMa): separate weights for known and missing pixels."""

from __future__ import annotations

import torch


def masked_l1(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, known: float, missing: float
) -> torch.Tensor:
    """mean(|pred - target| * (missing * mask + known * (1 - mask)))."""
    weights = missing * mask + known * (1 - mask)
    return ((pred - target).abs() * weights).mean()
