"""LaMa's FFCResNetGenerator, seen as encoder E -> refiner R -> decoder D.

The layer list `self.model` has LaMa's exact indices (big-lama: 0 pad, 1 stem, 2-4 downsampling,
5-22 FFC blocks, 23 concat, 24-32 upsampling, 33 pad, 34 conv, 35 sigmoid), so official weights load
with `strict=True`. `encoder`, `refiner` and `decoder` are views onto slices of that list: they share
the modules and are not registered, so the state dict has one copy of every weight.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from latentpaint.models.ffc import FFC_BN_ACT, ConcatTupleLayer, Features, FFCResnetBlock, map_features

UPSAMPLING = ("transpose", "resize")


def upsampling_layer(cin: int, cout: int, kind: str) -> nn.Module:
    """One 2x upsampling of the decoder.

    `transpose` is LaMa's 3x3 stride-2 transposed convolution. Its kernel size is not divisible by its
    stride, so neighbouring output pixels receive different numbers of weights: a checkerboard with the
    period of the stride, repeated by each of the three upsamplings into the 8-pixel grid that small,
    briefly trained models show (Odena et al. 2016, "Deconvolution and checkerboard artifacts").
    `resize` upsamples by nearest neighbour and then convolves (3x3), which has no such pattern; its
    weights sit one level deeper (big-lama: `model.24.1.weight`), so the two layouts never load into each other.
    """
    if kind == "transpose":
        return nn.ConvTranspose2d(cin, cout, kernel_size=3, stride=2, padding=1, output_padding=1)
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1))


class FFCResNetGenerator(nn.Module):
    """LaMa generator: reflect-padded 7x7 stem, strided FFC downsampling, FFC ResNet, transposed-conv upsampling."""

    def __init__(
        self,
        input_nc: int = 4,
        output_nc: int = 3,
        ngf: int = 64,
        n_downsampling: int = 3,
        n_blocks: int = 9,
        ratio_g: float = 0.75,
        enable_lfu: bool = False,
        max_features: int = 1024,
        out_activation: str = "sigmoid",
        upsample: str = "transpose",
    ):
        super().__init__()
        self.config = dict(
            input_nc=input_nc, output_nc=output_nc, ngf=ngf, n_downsampling=n_downsampling, n_blocks=n_blocks,
            ratio_g=ratio_g, enable_lfu=enable_lfu, max_features=max_features, out_activation=out_activation,
        )  # fmt: skip
        if upsample not in UPSAMPLING:
            raise ValueError(f"upsample must be one of {', '.join(UPSAMPLING)}, not {upsample!r}")
        if upsample != "transpose":  # LaMa's layout stays the default and is what its checkpoints hold
            self.config["upsample"] = upsample
        self.n_downsampling, self.n_blocks = n_downsampling, n_blocks
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            FFC_BN_ACT(input_nc, ngf, kernel_size=7, enable_lfu=False),
        ]
        for i in range(n_downsampling):
            # the last downsampling already splits its output into local/global for the FFC blocks
            ratio_gout = ratio_g if i == n_downsampling - 1 else 0.0
            layers.append(
                FFC_BN_ACT(
                    min(max_features, ngf * 2**i),
                    min(max_features, ngf * 2 ** (i + 1)),
                    kernel_size=3,
                    stride=2,
                    padding=1,
                    ratio_gout=ratio_gout,
                    enable_lfu=False,
                )  # fmt: skip
            )
        self.latent_channels = min(max_features, ngf * 2**n_downsampling)
        for _ in range(n_blocks):
            layers.append(FFCResnetBlock(self.latent_channels, ratio_g, ratio_g, enable_lfu))
        layers.append(ConcatTupleLayer())
        for i in range(n_downsampling):
            cin = min(max_features, ngf * 2 ** (n_downsampling - i))
            cout = min(max_features, ngf * 2 ** (n_downsampling - i - 1))
            layers += [
                upsampling_layer(cin, cout, upsample),
                nn.BatchNorm2d(cout),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7)]
        if out_activation == "sigmoid":
            layers.append(nn.Sigmoid())
        elif out_activation == "tanh":
            layers.append(nn.Tanh())
        elif out_activation != "none":
            raise ValueError(f"unknown out_activation {out_activation!r}")
        self.model = nn.Sequential(*layers)

    # -- the E / R / D views -------------------------------------------------------------------------
    @property
    def n_encoder_layers(self) -> int:
        return 2 + self.n_downsampling  # pad, stem, downsamplings

    @property
    def encoder(self) -> nn.Sequential:
        """Image -> (local, global) latent features at 1/2**n_downsampling resolution."""
        return self.model[: self.n_encoder_layers]

    @property
    def refiner(self) -> nn.Sequential:
        """The FFC ResNet blocks: latent features -> latent features."""
        return self.model[self.n_encoder_layers : self.n_encoder_layers + self.n_blocks]

    @property
    def decoder(self) -> nn.Sequential:
        """Latent features -> image in [0, 1]."""
        return self.model[self.n_encoder_layers + self.n_blocks :]

    def encoder_stages(self) -> list[nn.Module]:
        """Encoder layers whose outputs are the stages mask control adds to (stem, then each downsampling)."""
        return list(self.encoder)[1:]

    def encode(self, x: torch.Tensor, controls: Sequence[torch.Tensor | Features] | None = None) -> Features:
        """E(x); with `controls`, one residual per stage is added to that stage's output (mask control)."""
        if controls is None:
            return self.encoder(x)
        stages = self.encoder_stages()
        if len(controls) != len(stages):
            raise ValueError(f"expected {len(stages)} control residuals, got {len(controls)}")
        h = self.model[0](x)
        for stage, residual in zip(stages, controls):
            h = map_features(torch.add, stage(h), residual if isinstance(residual, tuple) else (residual, 0))
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def stage_channels(ngf: int, n_downsampling: int, max_features: int = 1024) -> list[int]:
    """Output channels of each encoder stage: ngf * 2**k for k = 0..n_downsampling."""
    return [min(max_features, ngf * 2**k) for k in range(n_downsampling + 1)]
