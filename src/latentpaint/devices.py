"""The one check of a user's `--device`: a torch device this machine can really use, or one clear line."""

from __future__ import annotations

import torch

from latentpaint.errors import LatentpaintError

# device types that compute; torch also knows 'meta' (shapes only, no data) and backends for other hardware
COMPUTE_DEVICES = ("cpu", "cuda", "mps", "xpu")


def resolve_device(name: str) -> torch.device:
    """torch.device(`name`) after allocating on it, so 'cuda:7' on a one-GPU or CPU machine fails here."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise LatentpaintError(f"unknown device {name!r} (e.g. cpu, cuda, cuda:1)") from None
    if device.type not in COMPUTE_DEVICES:  # 'meta' holds shapes only: every result would be missing
        raise LatentpaintError(
            f"device {name!r} cannot run a model; use one of {', '.join(COMPUTE_DEVICES)} (e.g. cuda:1)"
        )
    try:
        torch.empty(0, device=device)
    except (RuntimeError, ValueError, AssertionError) as exc:
        raise LatentpaintError(f"device {name!r} is not usable here: {str(exc).splitlines()[0]}") from None
    return device
