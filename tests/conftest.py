import os

import pytest
import torch

# two cores: keep torch from oversubscribing them in tests
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def rng_images():
    def make(n: int = 2, size: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        image = torch.rand(n, 3, size, size, generator=g)
        mask = torch.zeros(n, 1, size, size)
        mask[:, :, size // 4 : size // 2, size // 4 : 3 * size // 4] = 1
        return image, mask

    return make
