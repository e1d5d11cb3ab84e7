"""Texture fills: classical methods that continue the texture around a hole instead of smoothing it.

OpenCV contrib's xphoto shift-map (He & Sun 2012) and FSR fast (frequency-selective reconstruction), and
PatchMatch (Barnes et al. 2009, the `patchmatch-cython` package). Each takes a contiguous uint8 RGB
(H, W, 3) image, a bool (H, W) hole and a seed, and returns uint8 RGB; callers keep the known pixels.
They are the texture prefills of models/prefill.py and the classical methods of inference/classical.py.
A backend that is not installed is a one-line `MissingBackend` naming the package to install.
"""

from __future__ import annotations

import importlib.metadata

import cv2
import numpy as np

from latentpaint.errors import LatentpaintError

CONTRIB = "opencv-contrib-python-headless"  # the OpenCV wheel with cv2.xphoto (Makefile, README)
HEADLESS = "opencv-python-headless"  # the one albumentations requires; it writes the same cv2/ folder
PATCHMATCH = "patchmatch-cython"
PATCHMATCH_PATCH = 5  # patchmatch-cython's patch side: smaller images cannot be filled


class MissingBackend(LatentpaintError):
    """A texture fill whose library is not installed; the message names the package."""


def xphoto():
    """cv2.xphoto, or `MissingBackend` saying how make install provides it."""
    module = getattr(cv2, "xphoto", None)
    if module is None:
        try:  # the same version as the installed OpenCV wheel, which wrote the cv2/ folder first
            pin = f"=={importlib.metadata.version(HEADLESS)}"
        except importlib.metadata.PackageNotFoundError:
            pin = ""
        raise MissingBackend(
            f"this OpenCV has no contrib module xphoto (shift-map, FSR): pip install --no-deps "
            f"--force-reinstall {CONTRIB}{pin} (what make install does)"
        )
    return module


def patchmatch():
    """patchmatch-cython's coarse-to-fine inpainting function, or `MissingBackend`."""
    try:
        from patchmatch_cython import inpaint_pyramid
    except ImportError:
        raise MissingBackend(f"PatchMatch needs the package {PATCHMATCH}: pip install {PATCHMATCH}") from None
    return inpaint_pyramid


def shiftmap_fill(image: np.ndarray, hole: np.ndarray, seed: int = 0) -> np.ndarray:
    """xphoto's shift-map on CIELab (what it is designed for: intensity first, then colour), back to RGB."""
    module = xphoto()
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2Lab)
    out = np.zeros_like(lab)
    module.inpaint(lab, (~hole).astype(np.uint8) * 255, out, module.INPAINT_SHIFTMAP)  # mask: known pixels
    return cv2.cvtColor(out, cv2.COLOR_Lab2RGB)


def fsr_fill(image: np.ndarray, hole: np.ndarray, seed: int = 0) -> np.ndarray:
    """xphoto's frequency-selective reconstruction, fast setting; it reads 3 channels as BGR."""
    module = xphoto()
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    out = np.zeros_like(bgr)
    module.inpaint(bgr, (~hole).astype(np.uint8) * 255, out, module.INPAINT_FSR_FAST)
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


def patchmatch_fill(image: np.ndarray, hole: np.ndarray, seed: int = 0) -> np.ndarray:
    """patchmatch-cython's coarse-to-fine PatchMatch (5 px patches), seeded."""
    inpaint_pyramid = patchmatch()
    if min(image.shape[:2]) < PATCHMATCH_PATCH:
        raise LatentpaintError(
            f"patchmatch needs an image of at least {PATCHMATCH_PATCH}x{PATCHMATCH_PATCH} pixels (its patch "
            f"size), got {image.shape[1]}x{image.shape[0]}"
        )
    try:
        return inpaint_pyramid(image, hole, seed=seed)
    except ValueError as exc:
        raise LatentpaintError(f"patchmatch: {str(exc).strip().splitlines()[0]}") from None
