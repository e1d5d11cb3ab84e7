import os
from pathlib import Path

import pytest
import torch

# two cores: keep torch from oversubscribing them in tests
torch.set_num_threads(min(2, os.cpu_count() or 1))

FIXTURES = Path(__file__).parent / "fixtures"


class TinyRun:
    """What makes a preset a tiny, quiet CPU run (the presets' thesis generator is ngf 8): `--set` values
    shared by every test that trains, so a change to the defaults reaches them all at once."""

    SETS = (
        "data.batch_size=2",
        "data.num_workers=0",
        "trainer.progress_bar=false",
        "trainer.accelerator=cpu",
    )

    def sets(self, *extra: str, size: int = 64) -> list[str]:
        """The `--set` values of a tiny run at `size` px, then `extra` (which win)."""
        return [f"data.size={size}", *self.SETS, *extra]

    def config(self, preset: str, *extra: str, size: int = 64):
        """The run config (`RunConfig`) of `preset` made tiny, with `extra` overrides on top."""
        from latentpaint.training.presets import load_preset

        return load_preset(preset, self.sets(*extra, size=size))


@pytest.fixture(scope="session")
def tiny() -> TinyRun:
    return TinyRun()


@pytest.fixture
def rng_images():
    def make(n: int = 2, size: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        image = torch.rand(n, 3, size, size, generator=g)
        mask = torch.zeros(n, 1, size, size)
        mask[:, :, size // 4 : size // 2, size // 4 : 3 * size // 4] = 1
        return image, mask

    return make
