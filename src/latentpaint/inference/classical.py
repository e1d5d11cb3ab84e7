"""OpenCV's Telea / Navier-Stokes inpainting: the classical floor, a `predict --method` and the baseline
that `experiment` and the demo score beside the learned models."""

from __future__ import annotations

import cv2
import numpy as np

from latentpaint.data.images import check_same_size
from latentpaint.errors import LatentpaintError
from latentpaint.models.prefill import TELEA_RADIUS

_METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


def opencv_inpaint(
    image: np.ndarray, mask: np.ndarray, method: str = "telea", radius: int = TELEA_RADIUS
) -> np.ndarray:
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
