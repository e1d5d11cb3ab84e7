"""Fast Fourier Convolution blocks of LaMa (Suvorov et al. 2022).

The chain FourierUnit -> SpectralTransform -> FFC -> FFC_BN_ACT -> FFCResnetBlock keeps LaMa's module
and attribute names, so state-dict keys match the official checkpoints. Features travel as a
(local, global) tuple; a branch with no channels is the integer 0, as in LaMa.
"""

from __future__ import annotations

import torch
from torch import nn

Features = tuple[torch.Tensor, torch.Tensor | int]


class FourierUnit(nn.Module):
    """Global mixing: 1x1 conv + BN + ReLU on the real/imag spectrum of the input."""

    def __init__(self, in_channels: int, out_channels: int, groups: int = 1, fft_norm: str = "ortho"):
        super().__init__()
        # real and imaginary parts are interleaved per channel (c0.re, c0.im, c1.re, ...), as in LaMa
        self.conv_layer = nn.Conv2d(in_channels * 2, out_channels * 2, 1, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels * 2)
        self.relu = nn.ReLU(inplace=True)
        self.fft_norm = fft_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        spec = torch.fft.rfftn(x.float(), dim=(-2, -1), norm=self.fft_norm)  # (B, C, H, W//2+1) complex
        spec = torch.view_as_real(spec).permute(0, 1, 4, 2, 3)  # (B, C, 2, H, W//2+1)
        spec = spec.reshape(b, -1, h, spec.shape[-1])  # (B, 2C, H, W//2+1)
        spec = self.relu(self.bn(self.conv_layer(spec.to(x.dtype))))
        spec = (
            spec.reshape(b, -1, 2, h, spec.shape[-1]).permute(0, 1, 3, 4, 2).float()
        )  # (B, C, H, W//2+1, 2)
        spec = torch.complex(spec[..., 0], spec[..., 1])
        return torch.fft.irfftn(spec, s=(h, w), dim=(-2, -1), norm=self.fft_norm).to(x.dtype)


class SpectralTransform(nn.Module):
    """Global branch of an FFC: reduce channels, Fourier unit (+ optional local Fourier unit), expand."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, groups: int = 1, enable_lfu: bool = True
    ):
        super().__init__()
        self.enable_lfu = enable_lfu
        self.downsample = nn.AvgPool2d(kernel_size=2, stride=2) if stride == 2 else nn.Identity()
        hidden = out_channels // 2
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1, groups=groups, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
        )
        self.fu = FourierUnit(hidden, hidden, groups)
        if enable_lfu:
            self.lfu = FourierUnit(hidden, hidden, groups)
        self.conv2 = nn.Conv2d(hidden, out_channels, 1, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.downsample(x))
        out = self.fu(x)
        local = 0
        if self.enable_lfu:
            # LaMa's local Fourier unit: a quarter of the channels, split into 2x2 tiles stacked on channels
            _, c, h, w = x.shape
            tiles = torch.cat(torch.split(x[:, : c // 4], h // 2, dim=-2), dim=1)
            tiles = torch.cat(torch.split(tiles, w // 2, dim=-1), dim=1)
            local = self.lfu(tiles).repeat(1, 1, 2, 2)
        return self.conv2(x + out + local)


class FFC(nn.Module):
    """Fast Fourier Convolution: local<->global convolutions over a channel split set by the ratios."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        ratio_gin: float,
        ratio_gout: float,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = False,
        enable_lfu: bool = True,
        padding_type: str = "reflect",
    ):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError("FFC stride must be 1 or 2")
        in_cg = int(in_channels * ratio_gin)
        in_cl = in_channels - in_cg
        out_cg = int(out_channels * ratio_gout)
        out_cl = out_channels - out_cg
        self.ratio_gin, self.ratio_gout = ratio_gin, ratio_gout
        self.global_in_num = in_cg

        def conv(cin: int, cout: int) -> nn.Module:
            if cin == 0 or cout == 0:
                return nn.Identity()
            return nn.Conv2d(
                cin, cout, kernel_size, stride, padding, dilation, groups, bias, padding_mode=padding_type
            )

        self.convl2l = conv(in_cl, out_cl)
        self.convl2g = conv(in_cl, out_cg)
        self.convg2l = conv(in_cg, out_cl)
        self.convg2g = (
            nn.Identity()
            if in_cg == 0 or out_cg == 0
            else SpectralTransform(in_cg, out_cg, stride, 1 if groups == 1 else groups // 2, enable_lfu)
        )

    def forward(self, x: torch.Tensor | Features) -> Features:
        x_l, x_g = x if isinstance(x, tuple) else (x, 0)
        out_l, out_g = 0, 0
        if self.ratio_gout != 1:
            out_l = self.convl2l(x_l) + (self.convg2l(x_g) if torch.is_tensor(x_g) else 0)
        if self.ratio_gout != 0:
            out_g = self.convl2g(x_l) + (self.convg2g(x_g) if torch.is_tensor(x_g) else 0)
        return out_l, out_g


class FFC_BN_ACT(nn.Module):  # noqa: N801 - LaMa's name, kept for checkpoint compatibility
    """FFC followed by BatchNorm and activation on each branch."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        ratio_gin: float = 0.0,
        ratio_gout: float = 0.0,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = False,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        activation_layer: type[nn.Module] = nn.ReLU,
        padding_type: str = "reflect",
        enable_lfu: bool = True,
    ):
        super().__init__()
        self.ffc = FFC(
            in_channels, out_channels, kernel_size, ratio_gin, ratio_gout,
            stride, padding, dilation, groups, bias, enable_lfu, padding_type,
        )  # fmt: skip
        out_cg = int(out_channels * ratio_gout)
        self.bn_l = nn.Identity() if ratio_gout == 1 else norm_layer(out_channels - out_cg)
        self.bn_g = nn.Identity() if ratio_gout == 0 else norm_layer(out_cg)
        self.act_l = nn.Identity() if ratio_gout == 1 else activation_layer(inplace=True)
        self.act_g = nn.Identity() if ratio_gout == 0 else activation_layer(inplace=True)

    def forward(self, x: torch.Tensor | Features) -> Features:
        x_l, x_g = self.ffc(x)
        x_l = self.act_l(self.bn_l(x_l)) if torch.is_tensor(x_l) else x_l
        x_g = self.act_g(self.bn_g(x_g)) if torch.is_tensor(x_g) else x_g
        return x_l, x_g


class FFCResnetBlock(nn.Module):
    """Residual block of two FFC_BN_ACT layers; the refiner is a stack of these."""

    def __init__(
        self,
        dim: int,
        ratio_gin: float = 0.75,
        ratio_gout: float = 0.75,
        enable_lfu: bool = False,
        dilation: int = 1,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        activation_layer: type[nn.Module] = nn.ReLU,
        padding_type: str = "reflect",
    ):
        super().__init__()
        kwargs = dict(
            kernel_size=3, ratio_gin=ratio_gin, ratio_gout=ratio_gout, padding=dilation, dilation=dilation,
            norm_layer=norm_layer, activation_layer=activation_layer, padding_type=padding_type,
            enable_lfu=enable_lfu,
        )  # fmt: skip
        self.conv1 = FFC_BN_ACT(dim, dim, **kwargs)
        self.conv2 = FFC_BN_ACT(dim, dim, **kwargs)

    def forward(self, x: Features) -> Features:
        x_l, x_g = x if isinstance(x, tuple) else (x, 0)
        y_l, y_g = self.conv2(self.conv1((x_l, x_g)))
        return x_l + y_l, x_g + y_g


class ConcatTupleLayer(nn.Module):
    """Joins the (local, global) features back into one tensor before the decoder."""

    def forward(self, x: Features) -> torch.Tensor:
        x_l, x_g = x
        return torch.cat([x_l, x_g], dim=1) if torch.is_tensor(x_g) else x_l


def features_to_tensor(x: Features) -> torch.Tensor:
    """(local, global) features as one (B, C, H, W) tensor, e.g. for the latent loss; tensors pass through."""
    return x if torch.is_tensor(x) else ConcatTupleLayer()(x)


def map_features(fn, *xs: Features) -> Features:
    """Applies `fn` branch-wise to (local, global) features, e.g. to add or subtract them."""
    return tuple(fn(*branch) for branch in zip(*xs))  # type: ignore[return-value]


__all__ = [
    "FourierUnit",
    "SpectralTransform",
    "FFC",
    "FFC_BN_ACT",
    "FFCResnetBlock",
    "ConcatTupleLayer",
    "Features",
    "features_to_tensor",
    "map_features",
]
