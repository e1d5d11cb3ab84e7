"""The latent loss: L1 between refined features and the frozen encoder's features of the ground truth.

No decoding happens, which is where the thesis' cheaper training steps come from.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from latentpaint.models.ffc import Features, features_to_tensor


def latent_l1(refined: Features, target: Features) -> torch.Tensor:
    """Mean absolute difference over all latent channels (local and global) and positions."""
    return F.l1_loss(features_to_tensor(refined), features_to_tensor(target).detach())
