"""Perceptual loss on a torchvision backbone whose weights come from a local file (never downloaded)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from latentpaint.errors import LatentpaintError

# torchvision's file names, so a file already in $TORCH_HOME/hub/checkpoints is found
BACKBONES = {
    "vgg19": ("vgg19-dcbb9e9d.pth", "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"),
    "resnet50": ("resnet50-0676ba61.pth", "https://download.pytorch.org/models/resnet50-0676ba61.pth"),
}
RANDOM_WEIGHTS = "random"  # untrained backbone: only for smoke tests, never for results


def resolve_weights(backbone: str, weights: str | None) -> Path | None:
    if weights == RANDOM_WEIGHTS:
        return None
    file_name, url = BACKBONES[backbone]
    path = Path(weights) if weights else Path(torch.hub.get_dir()) / "checkpoints" / file_name
    if not path.is_file():
        raise LatentpaintError(
            f"perceptual loss needs {path}: download {url} there (or set loss.perceptual_weights=PATH, "
            "or loss.perceptual=0 to train without it)"
        )
    return path


class PerceptualLoss(nn.Module):
    """L2 between ImageNet-normalised backbone features of prediction and target at a few depths."""

    def __init__(self, backbone: str = "vgg19", weights: str | None = None):
        super().__init__()
        if backbone not in BACKBONES:
            raise LatentpaintError(f"unknown perceptual backbone {backbone!r}; choose {', '.join(BACKBONES)}")
        path = resolve_weights(backbone, weights)
        net = getattr(torchvision.models, backbone)(weights=None)
        if path is not None:
            from latentpaint.inference.checkpoints import load_torch_file

            net.load_state_dict(load_torch_file(path))
        if backbone == "vgg19":
            layers = net.features
            self.stages = nn.ModuleList([layers[:4], layers[4:9], layers[9:18], layers[18:27]])
        else:
            self.stages = nn.ModuleList(
                [
                    nn.Sequential(net.conv1, net.bn1, net.relu),
                    nn.Sequential(net.maxpool, net.layer1),
                    net.layer2,
                    net.layer3,
                ]
            )
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> PerceptualLoss:
        return super().train(False)  # a fixed feature extractor: BN statistics never move

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x, y = (pred - self.mean) / self.std, (target - self.mean) / self.std
        loss = pred.new_zeros(())
        for stage in self.stages:
            x, y = stage(x), stage(y)
            loss = loss + F.mse_loss(x, y.detach())
        return loss / len(self.stages)
