"""Latent-space damage and repair (thesis figure 4.4): what a mask destroys, and what the refiner puts back.

They run the network's own encoder, refiner and decoder, so they live beside it; viz/ only draws them.
"""

from __future__ import annotations

import torch

from latentpaint.models.network import InpaintingNetwork, latent_difference


@torch.no_grad()
def encode_clean(network: InpaintingNetwork, image: torch.Tensor):
    """E(gt): the encoder on the unmasked image, without mask information (empty mask).

    With nothing missing every prefill returns the image itself, so none runs (no host fill of an
    empty hole)."""
    return network.encode_masked(image, torch.zeros_like(image[:, :1]))


@torch.no_grad()
def latent_damage(
    network: InpaintingNetwork,
    image: torch.Tensor,
    mask: torch.Tensor,
    prefilled: torch.Tensor | None = None,
) -> torch.Tensor:
    """D(E(gt) - E(masked)): the damage the mask does in latent space, decoded to an image.
    `prefilled`: the host prefill of `image`, when the network has one (InpaintingNetwork.masked_image)."""
    damaged = network.encode(image, mask, prefilled)
    return network.decode(latent_difference(encode_clean(network, image), damaged))


@torch.no_grad()
def latent_repair(
    network: InpaintingNetwork,
    image: torch.Tensor,
    mask: torch.Tensor,
    prefilled: torch.Tensor | None = None,
) -> torch.Tensor:
    """D(R(E(masked)) - E(masked)): what the refiner adds in latent space, decoded to an image."""
    z = network.encode(image, mask, prefilled)
    return network.decode(latent_difference(network.refine(z), z))
