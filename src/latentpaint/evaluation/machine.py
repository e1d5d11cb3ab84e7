"""The hardware and software a run measured its time on, recorded beside its scores."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str) -> dict:
    """The hardware and software a run measured its time on."""
    import lightning
    import torch

    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
    }


def describe_machine(m: dict) -> str:
    """One sentence for the report: where the numbers were measured."""
    where = f"GPU {m['gpu']} (host CPU {m['cpu']})" if m.get("gpu") else f"CPU {m['cpu']}"
    return (
        f"{where}, {m['cores']} cores, {m['torch_threads']} torch threads; torch {m['torch']}, "
        f"Lightning {m['lightning']}, Python {m['python']}"
    )
