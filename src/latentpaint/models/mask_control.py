"""Mask control (thesis, after ControlNet): the mask enters the frozen encoder through zero convolutions.

A small mask encoder produces one feature map per encoder stage; each passes through a 1x1 convolution
whose weights and bias start at zero and is added to that stage's output. At initialisation the branch
adds exactly nothing, so the frozen autoencoder's latent space is where training starts.
"""

from __future__ import annotations

import torch
from torch import nn

from latentpaint.models.ffc import Features
from latentpaint.models.generator import stage_channels


def zero_module(module: nn.Module) -> nn.Module:
    """Sets every parameter of `module` to zero and returns it."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class PointwiseConv2d(nn.Conv2d):
    """A 1x1 convolution computed as a batched matrix product on the CPU.

    Same parameters and result as `nn.Conv2d(cin, cout, 1)`; at full resolution with few channels
    (the mask branch's first stage) oneDNN's 1x1 kernels are slow on CPU, and this takes about half
    the time for forward + backward. On other devices it is the plain convolution: cuDNN's 1x1 kernels
    are fast, use TF32 where allowed and keep a channels-last input channels-last (the reshape copies it).
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            return super().forward(x)
        b, c, h, w = x.shape
        y = torch.matmul(self.weight.view(self.out_channels, c), x.reshape(b, c, h * w))  # (B, Cout, H*W)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1)
        return y.view(b, self.out_channels, h, w)


def _conv_bn_relu(cin: int, cout: int, kernel_size: int, stride: int) -> nn.Sequential:
    conv = (
        PointwiseConv2d(cin, cout, bias=False)
        if kernel_size == 1
        else nn.Conv2d(cin, cout, kernel_size, stride, padding=kernel_size // 2, bias=False)
    )
    return nn.Sequential(
        conv,
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class MaskControl(nn.Module):
    """Mask encoder + zero-initialised injection convs, one per encoder stage of the generator."""

    def __init__(
        self, ngf: int = 8, n_downsampling: int = 3, ratio_g: float = 0.75, max_features: int = 1024
    ):
        super().__init__()
        self.config = dict(ngf=ngf, n_downsampling=n_downsampling, ratio_g=ratio_g, max_features=max_features)
        channels = stage_channels(ngf, n_downsampling, max_features)
        # 1x1 stem at full resolution, then one 3x3 stride-2 conv per downsampling, mirroring the encoder
        self.mask_encoder = nn.ModuleList(
            [_conv_bn_relu(1, channels[0], 1, 1)]
            + [_conv_bn_relu(channels[k], channels[k + 1], 3, 2) for k in range(n_downsampling)]
        )
        self.zero_convs = nn.ModuleList([zero_module(PointwiseConv2d(c, c)) for c in channels])
        # the last stage's output is split (local, global) like the FFC split of the encoder
        self.global_channels = int(channels[-1] * ratio_g)

    def forward(self, mask: torch.Tensor) -> list[torch.Tensor | Features]:
        """Residuals to add to each encoder stage; the last one is a (local, global) pair."""
        residuals: list[torch.Tensor | Features] = []
        h = mask
        for block, zero_conv in zip(self.mask_encoder, self.zero_convs):
            h = block(h)
            residuals.append(zero_conv(h))
        last = residuals[-1]
        n_local = last.shape[1] - self.global_channels
        residuals[-1] = (last[:, :n_local], last[:, n_local:]) if self.global_channels else (last, 0)
        return residuals
