"""The optimised inference path must compute what the eager model computes."""

import numpy as np
import pytest
import torch

from latentpaint.inference.inpainter import Inpainter
from latentpaint.inference.optimize import fold_batchnorm, optimize_for_inference
from latentpaint.models import InpaintingNetwork, create_generator


def randomize_batchnorm(model: torch.nn.Module, seed: int = 0) -> None:
    """Trained-looking BN statistics and affine parameters, so folding is tested on more than identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)


@pytest.mark.parametrize(
    "mask_mode, extra",
    [("alpha", {}), ("control", {}), ("control", {"prefill": "pyramid", "upsample": "resize"})],
)
def test_optimized_network_matches_eager(mask_mode, extra, rng_images):
    net = InpaintingNetwork("thesis", mask_mode, **extra)
    randomize_batchnorm(net)
    if net.mask_control is not None:  # make the branch matter: zero convs are zero at init
        with torch.no_grad():
            for conv in net.mask_control.zero_convs:
                conv.weight.normal_(0, 0.1)
    net.eval()
    fast = optimize_for_inference(net)
    image, mask = rng_images(size=64)
    with torch.no_grad():
        assert (fast(image, mask) - net(image, mask)).abs().max() <= 1e-4
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    # the original is untouched: folding works on a copy
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())


def test_batchnorm_folding_is_exact_per_layer():
    g = create_generator("thesis", input_nc=3)
    randomize_batchnorm(g, seed=1)
    g.eval()
    x = torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        reference = g(x)
        folded = fold_batchnorm(g)(x)
    assert (folded - reference).abs().max() <= 1e-5


def test_inpainter_optimize_switch_gives_the_same_image():
    net = InpaintingNetwork("thesis", "alpha")
    randomize_batchnorm(net, seed=2)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (45, 61, 3), dtype=np.uint8)
    mask = np.zeros((45, 61), np.uint8)
    mask[10:30, 20:50] = 255
    plain = Inpainter(net)(image, mask)
    fast = Inpainter(net, optimize=True)(image, mask)
    assert np.abs(plain.astype(int) - fast.astype(int)).max() <= 1  # uint8 rounding of ~1e-6 differences
