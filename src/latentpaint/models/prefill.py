"""Prefills: a parameter-free first guess for the hole before the encoder sees it.

LaMa zeroes the missing pixels. A small network trained for minutes then spends its capacity on
carrying colours from the hole's border into its middle, and fills large holes with flat grey. A
push-pull pyramid (Gortler et al. 1996) does that transport for free: average the known pixels down a
pyramid, then fill each level's gaps from the level above on the way back up. The learned refiner only
has to add what a smooth fill cannot (edges, texture).

Pure tensor code with a fixed number of levels: batched, differentiable, same on CPU and GPU, and it
exports to ONNX with dynamic image sizes.

`telea_fill` starts from OpenCV's Telea fill instead (Telea 2004, fast marching): on held-out photos it is
about 1 dB closer to the truth than the pyramid and it is the classical floor the learned model must beat,
so the refiner starts from that floor. It runs OpenCV on the CPU, per image, outside autograd, which is
why such models cannot be exported to ONNX or TorchScript.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

LEVELS = 10  # 2**10 = 1024: enough for any hole; larger images simply start from a coarser top level


def pyramid_fill(image: torch.Tensor, mask: torch.Tensor, levels: int = LEVELS) -> torch.Tensor:
    """`image` with every pixel where `mask` is 1 replaced by a smooth interpolation of the known pixels.

    image (B, C, H, W), mask (B, 1, H, W) with 1 = missing. Known pixels come back unchanged.
    """
    known = 1.0 - mask
    colour, weight = image * known, known  # premultiplied: colour / weight is the mean known colour
    pyramid = []
    for _ in range(levels):
        pyramid.append((colour, weight))
        colour = F.avg_pool2d(colour, 2, ceil_mode=True)
        weight = F.avg_pool2d(weight, 2, ceil_mode=True)
    # top: the mean known colour of each coarse cell, or of the whole image where a cell saw nothing
    global_mean = colour.sum((2, 3), keepdim=True) / weight.sum((2, 3), keepdim=True).clamp_min(1e-6)
    fill = torch.where(weight > 1e-6, colour / weight.clamp_min(1e-6), global_mean)
    for colour, weight in reversed(pyramid):
        up = F.interpolate(fill, size=colour.shape[-2:], mode="bilinear", align_corners=False)
        fill = colour + (1.0 - weight) * up  # partly known cells keep their mean, gaps come from above
    return image * known + fill * mask


TELEA_RADIUS = 3  # OpenCV's usual radius; also the default of the Telea baseline (inference/classical.py)


@torch.no_grad()
def telea_fill(image: torch.Tensor, mask: torch.Tensor, radius: int = TELEA_RADIUS) -> torch.Tensor:
    """`image` with the pixels where `mask` > 0.5 filled by cv2.inpaint (Telea), at 8-bit precision.

    image (B, 3, H, W) in [0, 1], mask (B, 1, H, W) with 1 = missing. Known pixels come back unchanged.
    """
    hole = mask > 0.5
    rgb = (image.detach().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    holes = hole[:, 0].to(torch.uint8).mul_(255).cpu().numpy()
    # cv2.inpaint treats the three channels alike, so RGB needs no BGR round trip
    filled = np.stack(
        [cv2.inpaint(np.ascontiguousarray(i), h, radius, cv2.INPAINT_TELEA) for i, h in zip(rgb, holes)]
    )
    fill = torch.from_numpy(filled).to(image.device, image.dtype).permute(0, 3, 1, 2) / 255
    return torch.where(hole, fill, image)
