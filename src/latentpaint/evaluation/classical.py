"""The classical floor: OpenCV's Telea / Navier-Stokes inpainting, which any learned model must beat."""

from __future__ import annotations

import cv2
import numpy as np

from latentpaint.data.images import check_same_size
from latentpaint.errors import LatentpaintError

_METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


def opencv_inpaint(image: np.ndarray, mask: np.ndarray, method: str = "telea", radius: int = 3) -> np.ndarray:
    """Fills mask > 0.5 in a uint8 RGB (H, W, 3) image with cv2.inpaint; known pixels are returned unchanged."""
    if method not in _METHODS:
        raise LatentpaintError(
            f"unknown OpenCV inpainting method {method!r}: choose one of {', '.join(_METHODS)}"
        )
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise LatentpaintError(
            f"OpenCV inpainting needs a uint8 (H, W, 3) image, got {image.dtype} {image.shape}"
        )
    mask = np.squeeze(mask, axis=-1) if mask.ndim == 3 and mask.shape[-1] == 1 else mask
    check_same_size(image, mask)
    if radius < 1:
        raise LatentpaintError(f"OpenCV inpainting radius must be at least 1, got {radius}")
    # cv2.inpaint fills each channel alike, so RGB order needs no BGR round trip
    mask_u8 = (np.asarray(mask, dtype=np.float32) > 0.5).astype(np.uint8) * 255
    return cv2.inpaint(np.ascontiguousarray(image), mask_u8, float(radius), _METHODS[method])


# the scores a summary compares, and which way is better
HIGHER_IS_BETTER = {"ssim": True, "psnr": True, "fid": False, "lpips": False}


def worse_metrics(ours: dict[str, float], reference: dict[str, float]) -> list[str]:
    """The scores (upper case, e.g. ["SSIM", "FID"]) on which `ours` is not better than `reference`, over
    those both have: how every summary says whether a learned model beats the classical floor."""
    worse = []
    for key, higher in HIGHER_IS_BETTER.items():
        if key in ours and key in reference:
            better = ours[key] > reference[key] if higher else ours[key] < reference[key]
            if not better:
                worse.append(key.upper())
    return worse
