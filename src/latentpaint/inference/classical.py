"""Classical inpainting: the floor every learned model is compared with, in one registry.

`CLASSICAL_METHODS` maps each name to its fill and the package that provides it. Every caller lists
these names: `predict --method`, `classical_inpaint` (the Python API), the web page and
`/api/inpaint?method=`, `experiment`'s floor rows, the demo and `benchmarks/quality.py`. Two are OpenCV's
diffusion fills (Telea, Navier-Stokes), three continue the texture around the hole: OpenCV contrib's
xphoto shift-map (He & Sun 2012) and FSR fast (frequency-selective reconstruction), and PatchMatch
(`patchmatch-cython`). Every fill takes a uint8 RGB (H, W, 3) image and a (H, W) mask (> 0.5 = hole) and
returns uint8 RGB with every known pixel exactly the input's; all are deterministic (PatchMatch for a
given seed). A backend that is not installed is a one-line error naming the package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np

from latentpaint.data.images import check_same_size
from latentpaint.errors import LatentpaintError, quoted
from latentpaint.models.prefill import TELEA_RADIUS
from latentpaint.models.texture_fill import (
    CONTRIB,
    PATCHMATCH,
    MissingBackend,
    fsr_fill,
    patchmatch,
    patchmatch_fill,
    shiftmap_fill,
    xphoto,
)

_METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


def opencv_inpaint(
    image: np.ndarray, mask: np.ndarray, method: str = "telea", radius: int = TELEA_RADIUS
) -> np.ndarray:
    """Fills mask > 0.5 in a uint8 RGB (H, W, 3) image with cv2.inpaint; known pixels are returned unchanged."""
    if method not in _METHODS:
        raise LatentpaintError(
            f"unknown OpenCV inpainting method {quoted(method)}: choose one of {', '.join(_METHODS)}"
        )
    if radius < 1:
        raise LatentpaintError(f"OpenCV inpainting radius must be at least 1, got {radius}")
    image, hole = _inputs(image, mask)
    # cv2.inpaint fills each channel alike, so RGB order needs no BGR round trip
    return cv2.inpaint(image, hole.astype(np.uint8) * 255, float(radius), _METHODS[method])


def _inputs(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(contiguous uint8 (H, W, 3) image, bool (H, W) hole), or a one-line error."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise LatentpaintError(
            f"classical inpainting needs a uint8 (H, W, 3) image, got {image.dtype} {image.shape}"
        )
    mask = np.squeeze(mask, axis=-1) if mask.ndim == 3 and mask.shape[-1] == 1 else mask
    check_same_size(image, mask)
    return np.ascontiguousarray(image), np.asarray(mask, dtype=np.float32) > 0.5


# -- the texture fills and their backends live in models/texture_fill.py (they are also host prefills) -------


def _opencv(image: np.ndarray, hole: np.ndarray, seed: int, method: str) -> np.ndarray:
    return opencv_inpaint(image, hole, method)


@dataclass(frozen=True)
class ClassicalMethod:
    """A registered fill: what tables call it, the function, and the library it needs (None: OpenCV itself)."""

    title: str
    fill: Callable[[np.ndarray, np.ndarray, int], np.ndarray]  # (uint8 RGB, bool hole, seed) -> uint8 RGB
    package: str | None
    texture: bool  # copies texture from the known pixels (so it needs some)


CLASSICAL_METHODS: dict[str, ClassicalMethod] = {
    "opencv-telea": ClassicalMethod("OpenCV Telea", partial(_opencv, method="telea"), None, False),
    "opencv-ns": ClassicalMethod("OpenCV Navier-Stokes", partial(_opencv, method="ns"), None, False),
    "opencv-shiftmap": ClassicalMethod("OpenCV shift-map", shiftmap_fill, CONTRIB, True),
    "opencv-fsr": ClassicalMethod("OpenCV FSR fast", fsr_fill, CONTRIB, True),
    "patchmatch": ClassicalMethod("PatchMatch", patchmatch_fill, PATCHMATCH, True),
}
_BACKENDS = {CONTRIB: xphoto, PATCHMATCH: patchmatch}


def classical_method(name: str) -> ClassicalMethod:
    """The registered method, or a one-line error listing them."""
    if name not in CLASSICAL_METHODS:
        raise LatentpaintError(
            f"unknown classical method {quoted(name)}: choose one of {', '.join(CLASSICAL_METHODS)}"
        )
    return CLASSICAL_METHODS[name]


def require_backend(name: str) -> None:
    """Raises `MissingBackend` (one line naming the package) when `name`'s library is not installed."""
    package = classical_method(name).package
    if package is not None:
        try:
            _BACKENDS[package]()
        except MissingBackend as exc:
            raise MissingBackend(f"{name}: {exc}") from None


def missing_backend(name: str) -> str | None:
    """Why `name` cannot run in this installation (the package to install), or None when it can."""
    try:
        require_backend(name)
    except MissingBackend as exc:
        return str(exc)
    return None


def classical_inpaint(image, mask, method: str = "opencv-telea", seed: int = 0):
    """Fills `image` where `mask` says so with a classical method (a name of `CLASSICAL_METHODS`).

    `image`: PIL image or uint8 array (H, W[, 3|4]); `mask`: PIL image or array (H, W), filled where the
    mask reader's rule says (data.images.fill_mask: any level above 0). PIL in -> PIL out, array in ->
    array out; known pixels are exactly the input's. `seed` makes PatchMatch reproducible (the other
    methods are deterministic without one).
    """
    from PIL import Image

    from latentpaint.inference.inpainter import to_mask_array, to_rgb_array

    result = classical_fill(to_rgb_array(image), to_mask_array(mask), method, seed)
    return Image.fromarray(result) if isinstance(image, Image.Image) else result


def classical_fill(image: np.ndarray, mask: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """uint8 (H, W, 3) image + float (H, W) mask (> 0.5 = hole) -> uint8 (H, W, 3) by `method`, known pixels exact.

    What `predict`, the server, `experiment`, the demo and the benchmarks call (through `fill_function`).
    """
    entry = classical_method(method)
    image, hole = _inputs(image, mask)
    if not hole.any():
        return image.copy()
    if entry.texture and hole.all():
        raise LatentpaintError(
            f"{method} copies texture from known pixels, but the mask covers the whole image"
        )
    filled = entry.fill(image, hole, seed)
    return np.where(hole[..., None], filled, image)


def fill_function(method: str, seed: int = 0) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """`classical_fill` for one method as (image, mask) -> result; a missing backend fails here, before any file."""
    require_backend(method)
    return partial(classical_fill, method=method, seed=seed)
