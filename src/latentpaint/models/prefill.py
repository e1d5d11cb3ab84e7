"""Prefills: a parameter-free first guess for the hole before the encoder sees it.

LaMa zeroes the missing pixels. A small network trained for minutes then spends its capacity on
carrying colours from the hole's border into its middle, and fills large holes with flat grey. A
push-pull pyramid (Gortler et al. 1996) does that transport for free: average the known pixels down a
pyramid, then fill each level's gaps from the level above on the way back up. The learned refiner only
has to add what a smooth fill cannot (edges, texture).

Pure tensor code with a fixed number of levels: batched, differentiable, same on CPU and GPU, and it
exports to ONNX with dynamic image sizes.

The texture prefills (`fsr`, `patchmatch`, `shiftmap`: models/texture_fill.py) continue the texture
around the hole instead of smoothing it, so the refiner starts from a textured guess; they run on the
image shrunk to `TEXTURE_WORKING_SIDE` so that a 512 px prefill stays cheaper than a big-lama forward pass.

The Telea prefill starts from OpenCV's Telea fill instead (Telea 2004, fast marching): on held-out photos it
is about 1 dB closer to the truth than the pyramid and it is the classical floor the learned model must
beat, so the refiner starts from that floor. It runs OpenCV on the CPU, per image, outside autograd, which
is why such models cannot be exported to ONNX or TorchScript.

Host prefills (`HOST_PREFILLS`, by name): functions on uint8 numpy arrays, `fill(image (H, W, 3), mask
(H, W)) -> (H, W, 3)`, where mask > 0.5 is the hole and every known pixel comes back unchanged. They run
where the uint8 image already is, never inside a training or inference step on the device: training's
dataset workers put the fill in the batch (`batch["prefill"]`, data/datasets.py), inference fills the
padded uint8 image before it is uploaded (models/apply.py), and the network takes the result as
`network(image, mask, prefilled=...)`. A new host prefill is one entry here. `pyramid` is a tensor
function and stays in the network's forward (`DEVICE_PREFILLS`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from latentpaint.models import texture_fill

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

HostPrefill = Callable[[np.ndarray, np.ndarray], np.ndarray]


def telea_uint8(image: np.ndarray, mask: np.ndarray, radius: int = TELEA_RADIUS) -> np.ndarray:
    """uint8 (H, W, 3) `image` with the pixels where `mask` (H, W) > 0.5 filled by cv2.inpaint (Telea).

    Known pixels come back unchanged; a mask without holes returns a copy of the image without OpenCV.
    """
    hole = np.asarray(mask) > 0.5
    if not hole.any():
        return image.copy()
    # cv2.inpaint treats the three channels alike, so RGB needs no BGR round trip
    filled = cv2.inpaint(np.ascontiguousarray(image), hole.astype(np.uint8) * 255, radius, cv2.INPAINT_TELEA)
    return np.where(hole[..., None], filled, image)


# Texture prefills work on the image shrunk to this long side: at 512 px FSR alone takes about twice a
# big-lama forward pass on a 2-core CPU. The shrunk fill is enlarged into the hole; the texture detail at
# full resolution is the network's to add (attention contextual copies it from the known latent cells).
TEXTURE_WORKING_SIDE = 256


def texture_uint8(fill, image: np.ndarray, mask: np.ndarray, working_side: int | None = TEXTURE_WORKING_SIDE):
    """A texture fill (models/texture_fill.py) as a host prefill: uint8 (H, W, 3) `image`, (H, W) `mask`
    (> 0.5 = hole), run at most `working_side` px on the long side; known pixels come back unchanged."""
    hole = np.asarray(mask) > 0.5
    if not hole.any():
        return image.copy()
    image = np.ascontiguousarray(image)
    h, w = hole.shape
    scale = 1.0 if working_side is None else min(1.0, working_side / max(h, w))
    if scale == 1.0:
        return np.where(hole[..., None], fill(image, hole), image)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    # a small pixel is missing if any of its pixels is: the fill never reads across the hole's edge
    small_hole = cv2.resize(hole.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
    filled = cv2.resize(fill(small, small_hole), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.where(hole[..., None], filled, image)


# name -> uint8 fill run on the host (dataset workers, before upload); see the module docstring
HOST_PREFILLS: dict[str, HostPrefill] = {
    "telea": telea_uint8,
    "fsr": partial(texture_uint8, texture_fill.fsr_fill),
    "patchmatch": partial(texture_uint8, texture_fill.patchmatch_fill),
    "shiftmap": partial(texture_uint8, texture_fill.shiftmap_fill),
}
# name -> tensor fill run inside the network's forward, on the device
DEVICE_PREFILLS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"pyramid": pyramid_fill}


def host_prefill(kind: str, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The host prefill `kind` of a uint8 (H, W, 3) image and its (H, W) mask (> 0.5 = hole)."""
    return HOST_PREFILLS[kind](image, mask)


@torch.no_grad()
def host_fill_tensor(kind: str, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The host prefill `kind` of a float batch: quantised to 8 bits, filled per image on the CPU, uploaded.

    image (B, 3, H, W) in [0, 1], mask (B, 1, H, W) with 1 = missing; known pixels come back unchanged.
    A convenience for callers that hold tensors only (tests, refinement): two host copies and a serial
    fill per image, which is why training and inference pass the fill in instead (module docstring).
    """
    hole = mask > 0.5
    rgb = (image.detach().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    holes = hole[:, 0].cpu().numpy()
    filled = np.stack([host_prefill(kind, i, h) for i, h in zip(rgb, holes)])
    fill = torch.from_numpy(filled).to(image.device, image.dtype).permute(0, 3, 1, 2) / 255
    return torch.where(hole, fill, image)


def telea_fill(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`host_fill_tensor` with Telea: image (B, 3, H, W) in [0, 1], mask (B, 1, H, W), 1 = missing."""
    return host_fill_tensor("telea", image, mask)
