"""The retrieval loss of latent contextual attention (models/attention.py), computed in latent space.

For a hole cell q the ground truth says which known cells it should copy: those whose E(gt) patch looks like
q's own E(gt) patch. The target is the softmax of that patch cosine similarity at a low temperature, the
prediction the attention's own softmax over the same known cells; the loss is their cross-entropy, averaged
over hole cells. It never decodes, and, unlike L1 on the copied latents, it does not reward averaging
candidates into a blur: the copy at inference is the single best match. Each step scores a random sample of
hole cells per image (`QUERIES`): the dense (h*w)^2 scores made the step ten times as slow on a CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from latentpaint.models.attention import LatentContextualAttention

TARGET_TEMPERATURE = 0.03
QUERIES = 128  # hole cells scored per image and step (a 128 px crop has about 300 at 4x downsampling)


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
    queries: int = QUERIES,
) -> torch.Tensor:
    """Cross-entropy between the attention's scores of hole cells over known cells and the ground truth's.

    features: what the attention embeds (the refiner's output, (B, C, h, w)); target_latent: E(gt) (same
    grid); hole, known: (B, h*w) bool (`latent_cells`). Each image scores `queries` hole cells drawn at
    random (with replacement) against all its cells: a fixed shape, so no host sync, and a cost of
    queries x h*w per image instead of (h*w)^2. Images without a hole or a known cell add nothing.
    """
    predicted = attention.embed(features)  # (B, D, L)
    b, d, _ = predicted.shape
    with torch.no_grad():
        truth = patch_embedding(target_latent, attention.patch)
        # hole cells, uniformly; an image without any draws anywhere and is weighted 0 below
        drawn = torch.multinomial(hole.float() + 1e-12, queries, replacement=True)  # (B, K)
        weight = (torch.gather(hole, 1, drawn) & known.any(1, keepdim=True)).float()
        floor = torch.finfo(predicted.dtype).min / 2  # a masked score: finite, so 0 * log p stays 0
        truth_q = torch.gather(truth, 2, drawn[:, None].expand(-1, truth.shape[1], -1))
        similar = torch.bmm(truth_q.transpose(1, 2), truth) / target_temperature  # (B, K, L)
        target = torch.softmax(similar.masked_fill(~known[:, None, :], floor), -1)
    predicted_q = torch.gather(predicted, 2, drawn[:, None].expand(-1, d, -1))
    scores = torch.bmm(predicted_q.transpose(1, 2), predicted) / attention.log_temperature.exp()
    log_p = torch.log_softmax(scores.masked_fill(~known[:, None, :], floor), -1)
    rows = -(target * log_p).sum(-1)  # (B, K): the cross-entropy of every drawn cell
    return (rows * weight).sum() / weight.sum().clamp_min(1)
