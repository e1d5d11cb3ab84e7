"""How stage 2's refiner starts (`model.refiner_init`): PyTorch's initialisation, or each FFC block as
(almost) the identity. The choices live here, beside what each one does, so a new one is one entry."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from latentpaint.models.network import InpaintingNetwork

IDENTITY_EPS = 1e-3


def init_refiner_as_identity(network: InpaintingNetwork) -> None:
    """Makes every FFC ResNet block of the refiner start as (almost) the identity.

    The block adds conv2(conv1(x)) to x, and conv2 ends in BatchNorm + ReLU. With the BN scale at zero
    the branch is a constant ReLU(bias): zero-gamma initialisation (Goyal et al. 2017) as such would give
    ReLU(0) = 0 and no gradient, so the bias is a small positive epsilon. At step 0 the refiner then passes
    the encoder's features through, and with a prefilled hole and zero mask-control convs the network
    starts as the stage-1 autoencoder applied to the prefill; training only has to improve on that.
    """
    with torch.no_grad():
        for block in network.generator.refiner:
            for bn in (block.conv2.bn_l, block.conv2.bn_g):
                if isinstance(bn, nn.BatchNorm2d):
                    bn.weight.zero_()
                    bn.bias.fill_(IDENTITY_EPS)


def _keep_pytorch_init(network: InpaintingNetwork) -> None:
    """PyTorch's own initialisation, as the network was built."""


# model.refiner_init: name -> what it does to a freshly built network
REFINER_INITS: dict[str, Callable[[InpaintingNetwork], None]] = {
    "default": _keep_pytorch_init,
    "identity": init_refiner_as_identity,
}
