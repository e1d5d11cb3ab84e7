"""Latent contextual attention (`model.attention=contextual`): hole positions copy known latent patches.

A pixel loss on a smooth prefill can only blur, and latent L1 leaves an identity refiner where it starts
(docs/quality.md). Texture has to come from somewhere: classical fills (PatchMatch, shift-map) copy it from
the known part of the image, and DeepFill v2's contextual attention (Yu et al. 2019) learns to. Here the
copying happens in the frozen autoencoder's latent space, where it is cheap (a 256 px image is a 64 x 64
latent map: 4096 positions) and where a copied latent decodes to the texture it came from.

Matching: every latent cell gets an embedding (a 1x1 projection of the refiner's output, unfolded over
`patch` x `patch` neighbours and L2-normalised); a hole cell's score for a known cell is their cosine
similarity over a learned temperature. Training (losses/attention.py) teaches the scores to rank known
cells as the ground truth would: cross-entropy against the softmax of the same patch similarity between
E(gt) latents, so training never decodes. At inference every hole cell takes its best match (argmax), and
the copy is pasted patch-wise: cell q averages, over its 3 x 3 neighbours n, the latent at match(n) + (q - n)
(DeepFill's patch voting), so neighbouring cells copy coherent, shifted pieces rather than a mosaic.

Pure tensor code: batched, the same on CPU and GPU, exportable to ONNX (gather, no data-dependent shapes
when `sparse=False`). Eager inference on large latents gathers only hole queries and known keys.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ATTENTIONS = ("none", "contextual")
CLEAN_MARGIN = 2  # known keys are at least this many latent cells from the hole: their encoding saw no hole
EMBED_DIM = 32  # the thesis latent has 32 channels: the projection starts as the identity there
QUERY_CHUNK = 1024  # hole queries scored at a time in eager matching: memory ~ QUERY_CHUNK x known cells


def latent_cells(mask: torch.Tensor, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Hole and clean-known cells of the latent grid for a (B, 1, H, W) mask (1 = missing), H and W
    multiples of `factor`: (B, h*w) bool each. A cell is a hole cell if any of its pixels is missing."""
    hole = F.max_pool2d(mask.float(), factor) > 0
    near = F.max_pool2d(hole.float(), 2 * CLEAN_MARGIN + 1, 1, CLEAN_MARGIN) > 0
    return hole.flatten(1), (~near).flatten(1)


class LatentContextualAttention(nn.Module):
    """Scores hole cells against known cells (`logits`) and copies the best matches (`copy`)."""

    def __init__(self, channels: int, dim: int = EMBED_DIM, patch: int = 3, temperature: float = 0.05):
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(channels, dim, 1)
        if dim == channels:  # untrained, it matches the latent itself: a working copy before any training
            with torch.no_grad():
                self.proj.weight.copy_(torch.eye(dim)[:, :, None, None])
                self.proj.bias.zero_()
        # learned, kept positive through its logarithm
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)))

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> unit-length patch embeddings (B, dim * patch**2, h*w)."""
        patches = F.unfold(self.proj(features), self.patch, padding=self.patch // 2)
        return F.normalize(patches, dim=1)

    def logits(self, features: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """Scores (B, L, L) of every cell (rows) for every clean known cell (columns; others -inf-like)."""
        e = self.embed(features)
        scores = torch.bmm(e.transpose(1, 2), e) / self.log_temperature.exp()
        return scores.masked_fill(~known[:, None, :], torch.finfo(scores.dtype).min)

    def best_matches(self, features: torch.Tensor, known: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """For every cell the flat index of its best-scoring known cell (B, L); cells with no known cell
        to copy from (an all-hole image) match themselves."""
        b, _, h, w = features.shape
        own = torch.arange(h * w, device=features.device).expand(b, -1)
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
            best = self.logits(features, known).argmax(-1)
        else:  # eager: only hole queries against known keys, image by image, in chunks of queries
            e = self.embed(features)
            best = own.clone()
            for i in range(b):
                queries, keys = hole[i].nonzero()[:, 0], known[i].nonzero()[:, 0]
                if not len(keys):
                    continue
                key_embeddings = e[i][:, keys]
                for chunk in queries.split(QUERY_CHUNK):
                    best[i, chunk] = keys[(e[i][:, chunk].T @ key_embeddings).argmax(-1)]
        return torch.where(known.any(1, keepdim=True), best, own)

    def copy(self, values: torch.Tensor, matches: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """`values` (B, C, h, w) with each hole cell replaced by the patch-wise paste of its matches."""
        b, c, h, w = values.shape
        flat = values.flatten(2)  # (B, C, L)
        # (B, L) source coordinates, looked up rather than divided: exports with symbolic h, w
        rows = torch.arange(h, device=values.device)[:, None].expand(h, w).reshape(-1)
        cols = torch.arange(w, device=values.device)[None, :].expand(h, w).reshape(-1)
        my, mx = rows[matches], cols[matches]
        own = torch.arange(h * w, device=values.device)
        # a hole cell that found nothing to copy (it matches itself) keeps its value and casts no vote
        hole_map = (hole & (matches != own)).view(b, 1, h, w).float()
        total = torch.zeros_like(values)
        votes = torch.zeros_like(hole_map)
        r = self.patch // 2
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                # neighbour n = q - d of cell q votes for the latent at match(n) + d
                sy = _shift(my.view(b, 1, h, w), dy, dx) + dy
                sx = _shift(mx.view(b, 1, h, w), dy, dx) + dx
                voter = _shift(hole_map, dy, dx)
                inside = ((sy >= 0) & (sy < h) & (sx >= 0) & (sx < w)).float() * voter
                index = (sy.clamp(0, h - 1) * w + sx.clamp(0, w - 1)).flatten(1)  # (B, L)
                picked = torch.gather(flat, 2, index[:, None, :].expand(b, c, -1)).view(b, c, h, w)
                total = total + picked * inside
                votes = votes + inside
        pasted = total / votes.clamp_min(1.0)
        return torch.where((hole_map > 0) & (votes > 0), pasted, values)


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """x[..., y - dy, x - dx] at (y, x): the value of the neighbour (y - dy, x - dx); zero outside."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)))
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top + 0 : top + h, left : left + w] if (dy or dx) else x
