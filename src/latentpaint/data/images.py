"""Reading and writing images and masks: any common format in, uint8 RGB or float32 {0, 1} masks out."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from latentpaint.errors import LatentpaintError
from latentpaint.files import atomic_write_bytes

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
# refuse larger images before decoding: 40 MP is a 7,700 x 5,200 photo, far beyond what training or
# evaluation needs, and a crafted PNG this size would take gigabytes to decode
MAX_PIXELS = 40_000_000
# PIL modes holding one channel of raw values: 1-bit, 8-bit, 16-bit (I;16*), 32-bit int and float
_SINGLE_CHANNEL_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def list_images(folder: str | Path) -> list[Path]:
    """Image files under `folder` (recursive, by extension, case-insensitive), sorted by relative path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LatentpaintError(f"image folder {folder} does not exist or is not a folder")
    found = [
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith(".")
    ]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _open(path: Path, max_pixels: int) -> Image.Image:
    """The decoded, EXIF-rotated image; every failure becomes one LatentpaintError naming the file."""
    try:
        with warnings.catch_warnings():
            # our own, lower limit below replaces PIL's decompression-bomb warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        with image:
            # the header gives the size: check it before decoding any pixels
            if image.width * image.height > max_pixels:
                raise LatentpaintError(
                    f"cannot read image {path}: {image.width}x{image.height} is above the limit of "
                    f"{max_pixels:,} pixels"
                )
            image.load()  # decode now: a truncated file fails here (PIL's LOAD_TRUNCATED_IMAGES stays False)
            return ImageOps.exif_transpose(image)  # a copy, still valid once the file is closed
    except LatentpaintError:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, ... depending on the codec
        reason = "no such file" if isinstance(exc, FileNotFoundError) else str(exc) or type(exc).__name__
        raise LatentpaintError(f"cannot read image {path}: {reason}") from exc


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Brings 16-bit, 32-bit integer and float single-channel data to 0..255."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        # float images are 0..1 by convention; clip anything outside
        return (np.clip(np.nan_to_num(array), 0, 1) * 255 + 0.5).astype(np.uint8)
    # 16-bit data (PIL modes I;16 and I): keep the high byte, as an 8-bit export would
    return (np.clip(array, 0, 65535).astype(np.uint32) >> 8).astype(np.uint8)


def load_rgb(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An image file as uint8 RGB (H, W, 3); grey, palette, CMYK, 16-bit and alpha images are converted."""
    path = Path(path)
    image = _open(path, max_pixels)
    try:
        if image.mode in _SINGLE_CHANNEL_MODES and image.mode not in ("1", "L"):
            grey = to_uint8(np.asarray(image))
            return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
        # alpha is dropped, not composited: training and masks only ever see the colour channels
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except Exception as exc:  # e.g. a colour mode PIL cannot convert
        raise LatentpaintError(f"cannot read image {path}: {exc}") from exc


def load_mask(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A mask file as float32 (H, W): 1.0 wherever any colour channel is above 0, else 0.0."""
    path = Path(path)
    image = _open(path, max_pixels)
    # single-channel modes keep their raw values (a 16-bit level of 1 still counts); the rest go via RGB,
    # which also drops alpha
    array = np.asarray(image if image.mode in _SINGLE_CHANNEL_MODES else image.convert("RGB"))
    if array.ndim == 3:
        array = array.max(axis=2)
    return (array > 0).astype(np.float32)


def save_image(path: str | Path, array: np.ndarray) -> None:
    """Writes uint8 grey (H, W) or RGB (H, W, 3) as PNG/JPEG by suffix, atomically (temp file + rename)."""
    path = Path(path)
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise LatentpaintError(
            f"cannot write {path}: expected uint8 (H, W) or (H, W, 3), got {array.dtype} {array.shape}"
        )
    bgr = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    ok, encoded = cv2.imencode(path.suffix or ".png", bgr)
    if not ok:
        raise LatentpaintError(f"cannot write {path}: OpenCV has no encoder for {path.suffix!r}")
    atomic_write_bytes(path, encoded.tobytes())


def builtin_photos() -> list[tuple[str, np.ndarray]]:
    """The nine photos shipped inside scikit-image and scikit-learn, as (name, uint8 RGB); no download."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    # all of these read files inside the installed wheels (checked offline with scikit-image 0.26 and
    # scikit-learn 1.9); scikit-image's pooch-fetched extras are deliberately not used
    left, right, _ = skimage.data.stereo_motorcycle()
    photos = [
        ("astronaut", skimage.data.astronaut()),
        ("chelsea", skimage.data.chelsea()),
        ("coffee", skimage.data.coffee()),
        ("rocket", skimage.data.rocket()),
        ("motorcycle_left", left),
        ("motorcycle_right", right),
        ("hubble_deep_field", skimage.data.hubble_deep_field()),
    ]
    sklearn_photos = load_sample_images()
    for filename, image in zip(sklearn_photos.filenames, sklearn_photos.images, strict=True):
        photos.append((Path(filename).stem, image))
    return [(name, np.ascontiguousarray(image[..., :3], dtype=np.uint8)) for name, image in photos]
