"""LaMa's high-resolution refinement (Kulshreshtha et al. 2022, LaMa `evaluation/refinement.py`).

The image is inpainted coarse to fine over a small pyramid. At every scale above the coarsest, the
encoder's output features E(masked image) are optimised with Adam so that the decoded prediction
  * matches the known pixels (L1 outside the mask), and
  * once blurred and halved, matches the previous scale's inpainting inside the (eroded) mask (L1).
The network's weights never change; only the features of this one image do. Defaults are LaMa's
(`configs/prediction/default.yaml`, refiner section): 15 iterations, lr 0.002, min side 512, at most
3 scales, a budget of 1.8 M pixels. Unlike LaMa, an image over the budget is refined at the reduced size
and the result is upscaled into the masked pixels, so the output always has the input's size.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from latentpaint.errors import LatentpaintError
from latentpaint.models.apply import image_to_tensor, tensor_to_image

EPS = 1e-8


def _gaussian_blur(x: torch.Tensor, sigma: float = 1.0, size: int = 5) -> torch.Tensor:
    """5x5 Gaussian blur, reflect borders (as kornia's gaussian_blur2d in LaMa)."""
    coords = torch.arange(size, dtype=x.dtype, device=x.device) - size // 2
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c, pad = x.shape[1], size // 2
    mode = "reflect" if min(x.shape[-2:]) > pad else "replicate"
    x = F.pad(x, (pad, pad, pad, pad), mode=mode)
    x = F.conv2d(x, kernel.view(1, 1, 1, size).expand(c, 1, 1, size), groups=c)
    return F.conv2d(x, kernel.view(1, 1, size, 1).expand(c, 1, size, 1), groups=c)


def _pyrdown(x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Blur, then bilinear resize (default: half size)."""
    size = size or (x.shape[-2] // 2, x.shape[-1] // 2)
    return F.interpolate(_gaussian_blur(x), size=size, mode="bilinear", align_corners=False)


def _pyrdown_mask(mask: torch.Tensor, blur: bool, round_up: bool) -> torch.Tensor:
    """Half-size mask; `round_up` keeps any touched pixel masked, otherwise only fully masked ones."""
    size = (mask.shape[-2] // 2, mask.shape[-1] // 2)
    small = F.interpolate(
        _gaussian_blur(mask) if blur else mask, size=size, mode="bilinear", align_corners=False
    )
    return (small >= (EPS if round_up else 1 - EPS)).to(mask.dtype)


def _erode(mask: torch.Tensor, size: int = 15) -> torch.Tensor:
    """Erosion with an elliptic element; pixels outside the image are ignored."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)).astype(np.float32)
    kernel_t = torch.from_numpy(kernel).to(mask)[None, None]
    holes = F.conv2d(1 - mask, kernel_t, padding=size // 2)  # zero padding: the outside is no hole
    return (holes < 0.5).to(mask.dtype)


def _pad_symmetric(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Bottom/right padding by mirroring with the edge (numpy 'symmetric', as `Inpainter`) to a multiple
    of `multiple`, and to at least twice it: the FFC blocks' reflect padding needs latents of 2 px."""

    def missing(n: int) -> int:
        return max((-n) % multiple, 2 * multiple - n)

    while missing(x.shape[-2]):
        x = torch.cat([x, x.flip(-2)[..., : missing(x.shape[-2]), :]], dim=-2)
    while missing(x.shape[-1]):
        x = torch.cat([x, x.flip(-1)[..., : missing(x.shape[-1])]], dim=-1)
    return x


def _masked_l1(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Mean |a - b| over the pixels where `where` is 1 (0 when there are none)."""
    where = where.expand_as(a)
    return ((a - b).abs() * where).sum() / where.sum().clamp_min(1)


def pyramid_scales(height: int, width: int, min_side: int, max_scales: int) -> int:
    """LaMa's number of scales: one more per doubling of the short side above `min_side`."""
    return min(1 + int(round(max(0.0, math.log2(min(height, width) / min_side)))), max_scales)


def _refine_scale(network, image, mask, reference, n_iters: int, lr: float, multiple: int):
    """Inpaints one scale, optimising E's features against `reference` (the previous, half-size scale)."""
    h, w = image.shape[-2:]
    image_p = _pad_symmetric(image, multiple)
    mask_p = (_pad_symmetric(mask, multiple) >= EPS).to(image.dtype)
    with torch.no_grad():
        masked = network.masked_image(image_p, mask_p)
        z = network.encode_masked(masked, mask_p)
    feats = [f.detach().clone().requires_grad_(True) if torch.is_tensor(f) else f for f in z]
    params = [f for f in feats if torch.is_tensor(f)]
    optimizer = torch.optim.Adam(params, lr=lr)
    if reference is not None:
        small_mask = _erode(_pyrdown_mask(mask, blur=False, round_up=False))
    losses = []
    for step in range(n_iters):
        optimizer.zero_grad()
        pred = network.output(masked, z, network.refine(tuple(feats)))  # (1, 3, H', W')
        if reference is None:
            break  # the coarsest scale is plain inference
        loss = _masked_l1(pred, image_p, 1 - mask_p) + _masked_l1(
            _pyrdown(pred[..., :h, :w]), reference, small_mask
        )
        losses.append(loss.detach())  # read once per scale below: .item() here would wait for a GPU each time
        if step < n_iters - 1:
            loss.backward()
            optimizer.step()
    pred = pred.detach()[..., :h, :w]
    return mask * pred + (1 - mask) * image, torch.stack(losses).tolist() if losses else []


def refine_inpaint(
    network,
    image: torch.Tensor,
    mask: torch.Tensor,
    n_iters: int = 15,
    lr: float = 0.002,
    min_side: int = 512,
    max_scales: int = 3,
    px_budget: int = 1_800_000,
    return_losses: bool = False,
):
    """Refined inpainting of `image` (1, 3, H, W) in [0, 1] where `mask` (1, 1, H, W) is 1.

    Returns the composited result (1, 3, H, W) — known pixels are the input's — and, with
    `return_losses`, the loss of every iteration at every refined scale.
    """
    if (
        image.ndim != 4
        or image.shape[0] != 1
        or image.shape[1] != 3
        or mask.shape != (1, 1, *image.shape[-2:])
    ):
        raise LatentpaintError(
            f"refinement takes one image (1, 3, H, W) and its mask (1, 1, H, W), got {tuple(image.shape)} "
            f"and {tuple(mask.shape)}"
        )
    if not all(hasattr(network, name) for name in ("masked_image", "encode_masked", "refine", "output")):
        raise LatentpaintError("refinement needs an InpaintingNetwork (encode / refine / output)")
    if getattr(network, "attention", None) is not None:  # argmax copies give the features no gradient
        raise LatentpaintError(
            "refinement optimises the features the decoder sees; a model with attention contextual copies "
            "its hole from the known part, with no gradient to follow: predict without --refine"
        )
    mask = (mask >= EPS).to(image.dtype)
    full_image, full_mask = image, mask
    h, w = image.shape[-2:]
    if h * w > px_budget:
        ratio = math.sqrt(px_budget / (h * w))
        size = (max(1, int(h * ratio)), max(1, int(w * ratio)))
        image = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
        mask = (F.interpolate(mask, size=size, mode="bilinear", align_corners=False) > EPS).to(image.dtype)
    images, masks = [image], [mask]
    for _ in range(pyramid_scales(*image.shape[-2:], min_side, max_scales) - 1):
        images.append(_pyrdown(images[-1]))
        masks.append(_pyrdown_mask(masks[-1], blur=True, round_up=True))

    multiple = 2**network.generator.n_downsampling
    was_training = network.training
    grad_flags = [p.requires_grad for p in network.parameters()]
    network.eval().requires_grad_(False)
    try:
        with torch.enable_grad():
            result, all_losses = None, []
            for scale_image, scale_mask in zip(reversed(images), reversed(masks)):
                result, losses = _refine_scale(
                    network, scale_image, scale_mask, result, n_iters, lr, multiple
                )
                if losses:
                    all_losses.append(losses)
    finally:
        network.train(was_training)
        for p, flag in zip(network.parameters(), grad_flags):
            p.requires_grad_(flag)
    if result.shape[-2:] != full_image.shape[-2:]:
        result = F.interpolate(result, size=full_image.shape[-2:], mode="bilinear", align_corners=False)
        result = full_mask * result + (1 - full_mask) * full_image
    return (result, all_losses) if return_losses else result


def refine_array(inpainter, image: np.ndarray, mask: np.ndarray, **kwargs) -> np.ndarray:
    """`refine_inpaint` for an `Inpainter` on uint8 (H, W, 3) + (H, W) arrays -> uint8 (H, W, 3)."""
    if not (mask > 0).any():
        return image.copy()
    device = inpainter.device
    x = image_to_tensor(image).to(device)
    m = torch.from_numpy((mask > 0).astype(np.float32))[None, None].to(device)
    out = tensor_to_image(refine_inpaint(inpainter.network, x, m, **kwargs))
    return np.where(mask[..., None] > 0, out, image)
