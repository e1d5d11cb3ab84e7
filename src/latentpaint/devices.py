"""The one check of a user's `--device`: a torch device this machine can really use, or one clear line;
`auto` (the default of predict, serve, evaluate and the Python API) is CUDA where present, else the CPU.
Also what a long-running process needs to know about a device's failures."""

from __future__ import annotations

import torch

from latentpaint.errors import LatentpaintError

# device types that compute; torch also knows 'meta' (shapes only, no data) and backends for other hardware
COMPUTE_DEVICES = ("cpu", "cuda", "mps", "xpu")
AUTO = "auto"
# CUDA errors after which the context is unusable: every later call fails the same way (a sticky error)
DEVICE_FAILURES = (
    "cuda error",
    "device-side assert",
    "illegal memory access",
    "cudnn_status_",
    "cublas_status_",
)


def auto_device() -> torch.device:
    """The first CUDA device when this machine has one, else the CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def as_device(device: str | torch.device) -> torch.device:
    """`device` as a torch.device, `auto` resolved (`auto_device`); no check that it works."""
    return auto_device() if device == AUTO else torch.device(device)


def resolve_device(name: str) -> torch.device:
    """torch.device(`name`) after allocating on it, so 'cuda:7' on a one-GPU or CPU machine fails here.
    `auto` is `auto_device()`."""
    if name == AUTO:
        return auto_device()
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


def is_device_failure(exc: BaseException) -> bool:
    """A sticky GPU error (illegal memory access, device-side assert, ...): the device is unusable until
    the process restarts. Out of memory is not one: freeing memory recovers from it."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return False
    accelerator_error = getattr(torch, "AcceleratorError", None)  # torch >= 2.8 raises it for CUDA errors
    if accelerator_error is not None and isinstance(exc, accelerator_error):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(words in text for words in DEVICE_FAILURES)


def free_cached_memory() -> None:
    """Returns the CUDA caching allocator's free blocks to the device (after an out-of-memory error, so
    fragmentation does not fail the next request too); nothing when CUDA was never used."""
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()
