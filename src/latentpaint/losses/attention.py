"""The retrieval loss of latent contextual attention (models/attention.py), computed in latent space.

For a hole cell q the ground truth says which known cells it should copy: those whose E(gt) patch looks like
q's own E(gt) patch. The target is the softmax of that patch cosine similarity at a low temperature, the
prediction the attention's own softmax over the same known cells; the loss is their cross-entropy, averaged
over hole cells. It never decodes, and, unlike L1 on the copied latents, it does not reward averaging
candidates into a blur: the copy at inference is the single best match.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from latentpaint.models.attention import LatentContextualAttention

TARGET_TEMPERATURE = 0.03


def patch_embedding(latent: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, h, w) -> unit-length unfolded patches (B, C * patch**2, h*w)."""
    return F.normalize(F.unfold(latent, patch, padding=patch // 2), dim=1)


def attention_retrieval_loss(
    attention: LatentContextualAttention,
    features: torch.Tensor,
    target_latent: torch.Tensor,
    hole: torch.Tensor,
    known: torch.Tensor,
    target_temperature: float = TARGET_TEMPERATURE,
) -> torch.Tensor:
    """Cross-entropy between the attention's scores of hole cells over known cells and the ground truth's.

    features: what the attention embeds (the refiner's output, (B, C, h, w)); target_latent: E(gt) (same
    grid); hole, known: (B, h*w) bool (`latent_cells`). Images without a hole or a known cell add nothing.
    Dense per image, so memory is (h*w)^2 scores at a time (a 256 px crop at 4x downsampling: 16.7 M).
    """
    predicted = attention.embed(features)
    with torch.no_grad():
        truth = patch_embedding(target_latent, attention.patch)
    floor = torch.finfo(predicted.dtype).min / 2  # a masked score: finite, so 0 * log p stays 0
    usable = known.any(1) & hole.any(1)
    total = features.new_zeros(())
    # one image at a time, dense over its cells: (h*w)^2 scores, no data-dependent shapes (no host sync)
    for i in range(features.shape[0]):
        scores = (predicted[i].T @ predicted[i]) / attention.log_temperature.exp()
        log_p = torch.log_softmax(scores.masked_fill(~known[i][None, :], floor), -1)
        with torch.no_grad():
            similar = (truth[i].T @ truth[i]) / target_temperature
            target = torch.softmax(similar.masked_fill(~known[i][None, :], floor), -1)
        rows = -(target * log_p).sum(-1)  # (h*w,) cross-entropy of every cell
        total = total + (rows * (hole[i] & usable[i])).sum()
    return total / (hole & usable[:, None]).sum().clamp_min(1)
