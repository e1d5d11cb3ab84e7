"""Perceptual loss on a fixed backbone whose weights come from a local file (never downloaded).

`ade20k-resnet50dilated` is LaMa's ResNet-PL (losses/resnet_pl.py): the ADE20k dilated ResNet-50 encoder,
the MSE of its four stages summed, as LaMa does. `resnet50` (torchvision's ImageNet ResNet-50) is the
fallback for when that file cannot be had, and `vgg19` the classic choice; both average their four stages.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from latentpaint.errors import LatentpaintError, quoted
from latentpaint.losses.resnet_pl import ADE20K_BACKBONE, ade20k_resnet50_dilated, find_ade20k_weights

# torchvision's file names, so a file already in $TORCH_HOME/hub/checkpoints is found
BACKBONES = {
    "vgg19": ("vgg19-dcbb9e9d.pth", "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"),
    "resnet50": ("resnet50-0676ba61.pth", "https://download.pytorch.org/models/resnet50-0676ba61.pth"),
}
PERCEPTUAL_BACKBONES = (ADE20K_BACKBONE, *BACKBONES)
RANDOM_WEIGHTS = "random"  # untrained backbone: only for smoke tests, never for results


def resolve_weights(backbone: str, weights: str | None) -> Path | None:
    """The weight file `backbone` will load (None for 'random'); a one-line error naming it when missing."""
    if weights == RANDOM_WEIGHTS:
        return None
    if backbone == ADE20K_BACKBONE:
        return find_ade20k_weights(weights)
    file_name, url = BACKBONES[backbone]
    path = Path(weights) if weights else Path(torch.hub.get_dir()) / "checkpoints" / file_name
    if not path.is_file():
        raise LatentpaintError(
            f"perceptual loss needs {quoted(path)}: download {url} there (or set loss.perceptual_weights=PATH, "
            "or loss.perceptual=0 to train without it)"
        )
    return path


def find_perceptual_weights(backbone: str, weights_dir: Path) -> str:
    """What loss.perceptual_weights should be for a `--weights-dir` folder (its file, or the folder for
    ResNet-PL, which also looks for LaMa's ade20k/ade20k-resnet50dilated-ppm/ layout inside it)."""
    if backbone == ADE20K_BACKBONE:
        return str(weights_dir.resolve())
    return str((weights_dir / BACKBONES[backbone][0]).resolve())


def describe_backbone(backbone: str, weights: str | None) -> str:
    """Which network the perceptual loss runs, for logs and reports."""
    if backbone == ADE20K_BACKBONE:
        text = "LaMa's ResNet-PL: ADE20k ResNet-50 dilated encoder, sum of 4 stage MSEs"
    else:
        text = f"torchvision ImageNet {backbone}, mean of 4 stage MSEs"
        text += " (ImageNet fallback, not LaMa's ResNet-PL)" if backbone == "resnet50" else ""
    return text + (", untrained" if weights == RANDOM_WEIGHTS else "")


class PerceptualLoss(nn.Module):
    """L2 between ImageNet-normalised backbone features of prediction and target at a few depths."""

    def __init__(
        self,
        backbone: str = "vgg19",
        weights: str | None = None,
        resnet_pl_width: int = 64,
        resnet_pl_blocks: tuple[int, ...] = (3, 4, 6, 3),
    ):
        """`resnet_pl_*` shrink the ADE20k backbone for tests; its real file needs the defaults."""
        super().__init__()
        if backbone not in PERCEPTUAL_BACKBONES:
            raise LatentpaintError(
                f"unknown perceptual backbone {backbone!r}; choose {', '.join(PERCEPTUAL_BACKBONES)}"
            )
        self.backbone = backbone
        # LaMa sums its stages; the torchvision backbones have always averaged theirs here
        self.sum_stages = backbone == ADE20K_BACKBONE
        if backbone == ADE20K_BACKBONE:
            net, path = ade20k_resnet50_dilated(weights, resnet_pl_width, resnet_pl_blocks)
            self.stages = nn.ModuleList(net.stages())
        else:
            path = resolve_weights(backbone, weights)
            self.stages = self._torchvision_stages(backbone, path)
        self.weights_file = path
        self.description = describe_backbone(backbone, weights) + (f" ({path})" if path else "")
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    @staticmethod
    def _torchvision_stages(backbone: str, path: Path | None) -> nn.ModuleList:
        net = getattr(torchvision.models, backbone)(weights=None)
        if path is not None:
            from latentpaint.storage.torchfile import load_torch_file

            net.load_state_dict(load_torch_file(path))
        if backbone == "vgg19":
            layers = net.features
            return nn.ModuleList([layers[:4], layers[4:9], layers[9:18], layers[18:27]])
        return nn.ModuleList(
            [
                nn.Sequential(net.conv1, net.bn1, net.relu),
                nn.Sequential(net.maxpool, net.layer1),
                net.layer2,
                net.layer3,
            ]
        )

    def train(self, mode: bool = True) -> PerceptualLoss:
        return super().train(False)  # a fixed feature extractor: BN statistics never move

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x, y = (pred - self.mean) / self.std, (target - self.mean) / self.std
        loss = pred.new_zeros(())
        for stage in self.stages:
            x, y = stage(x), stage(y)
            loss = loss + F.mse_loss(x, y.detach())
        return loss if self.sum_stages else loss / len(self.stages)
