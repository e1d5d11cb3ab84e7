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

    def system(self, preset: str, *extra: str, size: int = 32):
        """(config: a `RunConfig`, system, one fixed batch) of `preset` made tiny, on an untrained stage-1 autoencoder of
        its generator (no checkpoint needed); the batch holds the host prefill the loader would add."""
        from latentpaint.models import prefill
        from latentpaint.training.inpainting import build_inpainting_system

        sets = ("loss.perceptual_weights=random", "loss.discriminator_ndf=8", *extra)
        config = self.config(preset, *sets, size=size)
        stage1 = config.model.spec.autoencoder_generator().state_dict()
        system = build_inpainting_system(config, stage1)
        g = torch.Generator().manual_seed(0)
        batch = {"image": torch.rand(2, 3, size, size, generator=g), "mask": torch.zeros(2, 1, size, size)}
        batch["mask"][..., size // 4 : 3 * size // 4, size // 4 : size // 2] = 1
        if system.network.host_prefill is not None:
            batch["prefill"] = prefill.host_fill_tensor(system.network.prefill, batch["image"], batch["mask"])
        return config, system, batch


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
