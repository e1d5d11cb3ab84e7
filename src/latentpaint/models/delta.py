"""Delta refiner (thesis appendix A): the refiner predicts a change to its input features."""

from __future__ import annotations

import torch
from torch import nn

from latentpaint.models.ffc import Features, map_features


class DeltaRefiner(nn.Module):
    """R'(z) = z + R(z): the FFC blocks only have to learn what the mask destroyed."""

    def __init__(self, refiner: nn.Module):
        super().__init__()
        self.refiner = refiner

    def forward(self, z: Features) -> Features:
        return map_features(torch.add, z, self.refiner(z))
