"""Tests that need a real CUDA device: marked `gpu` and skipped where torch sees none (CI's CPUs).

benchmarks/gpu_check.sh runs them on a GPU machine. LATENTPAINT_GPU_TEST_DEVICE=cpu runs them on the CPU
instead (a dry run of their own code: no CUDA behaviour is checked then).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

DEVICE = torch.device(os.environ.get("LATENTPAINT_GPU_TEST_DEVICE", "cuda"))
HERE = Path(__file__).resolve().parent


def on_cuda() -> bool:
    return DEVICE.type == "cuda"


def pytest_collection_modifyitems(config, items):
    usable = not on_cuda() or torch.cuda.is_available()
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.gpu)
            if not usable:
                item.add_marker(
                    pytest.mark.skip(reason="needs a CUDA device (benchmarks/gpu_check.sh runs it)")
                )


@pytest.fixture
def device() -> torch.device:
    return DEVICE


@pytest.fixture
def no_sync():
    """A context in which any host-device synchronisation raises (CUDA's sync debug mode)."""
    import contextlib

    @contextlib.contextmanager
    def watch():
        if not on_cuda():
            yield
            return
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode(0)

    return watch
