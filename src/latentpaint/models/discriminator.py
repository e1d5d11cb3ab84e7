"""pix2pixHD's NLayerDiscriminator as LaMa uses it: patch logits plus intermediate features."""

from __future__ import annotations

import torch
from torch import nn


class NLayerDiscriminator(nn.Module):
    """PatchGAN with kernel 4 and LeakyReLU 0.2; returns (logits, features) for feature matching."""

    def __init__(
        self,
        input_nc: int = 3,
        ndf: int = 64,
        n_layers: int = 4,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
    ):
        super().__init__()
        self.config = dict(input_nc=input_nc, ndf=ndf, n_layers=n_layers)
        blocks: list[nn.Sequential] = [
            nn.Sequential(nn.Conv2d(input_nc, ndf, 4, stride=2, padding=2), nn.LeakyReLU(0.2, True))
        ]
        nf = ndf
        for _ in range(1, n_layers):
            prev, nf = nf, min(nf * 2, 512)
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(prev, nf, 4, stride=2, padding=2), norm_layer(nf), nn.LeakyReLU(0.2, True)
                )
            )
        prev, nf = nf, min(nf * 2, 512)
        blocks.append(
            nn.Sequential(
                nn.Conv2d(prev, nf, 4, stride=1, padding=2), norm_layer(nf), nn.LeakyReLU(0.2, True)
            )
        )
        blocks.append(nn.Sequential(nn.Conv2d(nf, 1, 4, stride=1, padding=2)))
        # LaMa registers the blocks as model0 .. modelN; keep the names so its discriminators load too
        for i, block in enumerate(blocks):
            setattr(self, f"model{i}", block)
        self.n_blocks = len(blocks)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = []
        for i in range(self.n_blocks):
            x = getattr(self, f"model{i}")(x)
            features.append(x)
        return features[-1], features[:-1]


class LatentDiscriminator(nn.Module):
    """A patch discriminator on latent features (local and global branches stacked as channels).

    The thesis proposes adversarial losses in the latent space so that training never decodes. Latent
    maps are 1/2**n_downsampling of the image (32x32 for a 256 px image), so two stride-1 convs around
    one stride-2 conv already see the whole map; no normalisation, so the R1 penalty is per sample.
    """

    def __init__(self, in_channels: int, ndf: int = 64):
        super().__init__()
        self.config = dict(in_channels=in_channels, ndf=ndf)
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(nn.Conv2d(in_channels, ndf, 3, padding=1), nn.LeakyReLU(0.2, True)),
                nn.Sequential(nn.Conv2d(ndf, ndf * 2, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)),
                nn.Sequential(nn.Conv2d(ndf * 2, ndf * 2, 3, padding=1), nn.LeakyReLU(0.2, True)),
            ]
        )
        self.head = nn.Conv2d(ndf * 2, 1, 3, padding=1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """z (B, C, h, w) -> patch logits (B, 1, h/2, w/2) and the intermediate features."""
        features = []
        for block in self.blocks:
            z = block(z)
            features.append(z)
        return self.head(z), features
