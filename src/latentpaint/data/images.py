"""Reading and writing images and masks: any common format in, uint8 RGB or float32 {0, 1} masks out."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from latentpaint.errors import LatentpaintError, quoted
from latentpaint.files import FOLDER, REGULAR, atomic_write_bytes, path_kind

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
# The only decoders a file is ever handed to, whatever its name says: what cameras, browsers and image
# tools write. Everything else Pillow could open (EPS runs Ghostscript, ...) is refused unread. Every
# reader (files, folders, uploads, header probes) passes this to Image.open. GIFs give their first frame.
IMAGE_FORMATS: tuple[str, ...] = tuple(
    f
    for f in ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "AVIF")
    if f in Image.registered_extensions().values()
)
# lossy formats: a mask saved as JPEG has compression noise around every edge, which "> 0 means fill"
# would add to the mask; their masks are thresholded at half range instead
LOSSY_FORMATS = ("JPEG", "MPO")
LOSSY_MASK_THRESHOLD = 127  # fill where the 8-bit level is above this
# a mask with more grey levels than this (besides 0 and full) is probably not what the user meant
MASK_LEVELS_WARNING = 16
# refuse larger images before decoding: 40 MP is a 7,700 x 5,200 photo, far beyond what training or
# evaluation needs, and a crafted PNG this size would take gigabytes to decode
MAX_PIXELS = 40_000_000
# PIL modes holding one channel of raw values: 1-bit, 8-bit, 16-bit (I;16*), 32-bit int and float
_SINGLE_CHANNEL_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def list_images(folder: str | Path) -> list[Path]:
    """Image files under `folder` (recursive, by extension, case-insensitive), sorted by relative path."""
    folder = Path(folder)
    kind = path_kind(folder)
    if kind != FOLDER:
        what = "does not exist" if kind is None else f"is {kind}, not a folder"
        raise LatentpaintError(f"image folder {quoted(folder)} {what}")
    found = [
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith(".")
    ]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


class ImageReadError(LatentpaintError):
    """An image or mask that cannot be read; `status` is what the server answers with (415, 413 or 422)."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


Source = str | Path | bytes | BinaryIO


def _open(source: Source, what: str, max_pixels: int) -> Image.Image:
    """The decoded, EXIF-rotated image; every failure becomes one ImageReadError naming `what`.

    `source` is a path, the file's bytes or an open binary file (an upload): all are read alike.
    """
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    elif isinstance(source, str | Path) and path_kind(source) not in (None, REGULAR):
        # a pipe would block and a device never end: only regular files are opened
        raise ImageReadError(f"cannot read {what}: it is {path_kind(source)}, not an image file")
    try:
        try:
            with warnings.catch_warnings():
                # our own, lower limit below replaces PIL's decompression-bomb warning
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(source, formats=IMAGE_FORMATS)
        except Image.DecompressionBombError:
            raise ImageReadError(f"cannot read {what}: it has more pixels than can be decoded", 413) from None
        with image:
            # the header gives the size: check it before decoding any pixels
            if image.width * image.height > max_pixels:
                raise ImageReadError(
                    f"cannot read {what}: {image.width}x{image.height} is above the limit of "
                    f"{max_pixels:,} pixels",
                    413,
                )
            image.load()  # decode now: a truncated file fails here (PIL's LOAD_TRUNCATED_IMAGES stays False)
            return oriented(image)
    except LatentpaintError:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, ... depending on the codec
        status = 422
        if isinstance(exc, FileNotFoundError):
            reason = "no such file"
        elif isinstance(exc, UnidentifiedImageError):
            reason, status = f"not in a supported image format ({', '.join(IMAGE_FORMATS)})", 415
        elif isinstance(exc, OSError) and exc.strerror:
            reason = exc.strerror  # the system's sentence without "[Errno 13]" and the name again
        else:
            reason = str(exc) or type(exc).__name__
        raise ImageReadError(f"cannot read {what}: {reason}", status) from exc


def oriented(image: Image.Image) -> Image.Image:
    """The EXIF-rotated copy (still valid once the file is closed), keeping the decoder's format name."""
    result = ImageOps.exif_transpose(image)
    result.format = image.format
    return result


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Brings 16-bit, 32-bit integer and float single-channel data to 0..255.

    Integer data is scaled by the range its values really use: 8-bit content stored in a 16- or 32-bit
    mode (PIL's "I", "I;16": common for TIFFs and converted greyscale) stays as it is, 16-bit content
    keeps its high byte as an 8-bit export would, 32-bit content its top 8 bits.
    """
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        # float images are 0..1 by convention; clip anything outside
        return (np.clip(np.nan_to_num(array), 0, 1) * 255 + 0.5).astype(np.uint8)
    values = np.clip(array, 0, None).astype(np.uint64)
    top = int(values.max()) if values.size else 0
    shift = 0 if top <= 0xFF else 8 if top <= 0xFFFF else 24
    return (values >> shift).astype(np.uint8)


def rgb_array(image: Image.Image, what: str = "the image") -> np.ndarray:
    """A decoded image as uint8 RGB (H, W, 3): grey, palette, CMYK, 16-bit and alpha images are converted."""
    try:
        if image.mode in _SINGLE_CHANNEL_MODES and image.mode not in ("1", "L"):
            grey = to_uint8(np.asarray(image))
            return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
        # alpha is dropped, not composited: training and masks only ever see the colour channels
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except (ValueError, OSError) as exc:  # a colour mode PIL cannot convert, e.g. LAB
        raise ImageReadError(
            f"cannot read {what}: images in PIL mode {image.mode} are not supported", 415
        ) from exc


def mask_levels(image: Image.Image) -> np.ndarray:
    """A decoded mask's raw levels: single-channel modes keep their values (a 16-bit level of 1 still
    counts), the rest go via RGB, which also drops alpha."""
    return np.asarray(image if image.mode in _SINGLE_CHANNEL_MODES else image.convert("RGB"))


def read_image(source: Source, what: str | None = None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The one image reader (files, bytes, uploads): uint8 RGB (H, W, 3)."""
    what = what or (f"image {quoted(source)}" if isinstance(source, str | Path) else "the uploaded image")
    return rgb_array(_open(source, what, max_pixels), what)


def read_mask(
    source: Source, what: str | None = None, max_pixels: int = MAX_PIXELS
) -> tuple[np.ndarray, str | None]:
    """The one mask reader (files, bytes, uploads): (float32 (H, W) with 1.0 where `fill_mask` says fill,
    warning or None)."""
    name = quoted(source) if isinstance(source, str | Path) else "upload"
    what = what or f"mask {name}"
    image = _open(source, what, max_pixels)
    mask, warning = binarize_mask(mask_levels(image), is_lossy(image), name)
    return mask.astype(np.float32), warning


def load_rgb(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An image file as uint8 RGB (H, W, 3); grey, palette, CMYK, 16-bit and alpha images are converted."""
    return read_image(Path(path), f"image {quoted(path)}", max_pixels)


def check_same_size(image: np.ndarray, mask: np.ndarray, what: str = "the mask", hint: str = "") -> None:
    """The one size rule: a mask must be exactly its image's size (H, W)."""
    if image.shape[:2] != mask.shape[:2]:
        raise LatentpaintError(
            f"{what} is {mask.shape[1]}x{mask.shape[0]} but its image is {image.shape[1]}x{image.shape[0]}; "
            f"they must be the same size{hint}"
        )


def fill_mask(levels: np.ndarray, lossy: bool = False) -> np.ndarray:
    """The one mask rule: bool (H, W), True where raw `levels` (H, W[, C]) say fill.

    Any channel above 0 means fill. JPEG masks are the exception: their compression noise would grow the
    mask around every edge (about 30 % for a brush stroke), so they are thresholded at half range (8-bit
    level above 127).
    """
    levels = np.asarray(levels)
    if levels.ndim == 3:
        levels = levels.max(axis=2)
    if levels.ndim != 2:
        raise LatentpaintError(f"mask must be (H, W) or (H, W, C), got {levels.shape}")
    return to_uint8(levels) > LOSSY_MASK_THRESHOLD if lossy else levels > 0


def binarize_mask(array: np.ndarray, lossy: bool, name: str) -> tuple[np.ndarray, str | None]:
    """(`fill_mask`, warning or None): the warning counts the JPEG noise pixels left out, or says that a
    lossless mask has many grey levels (all of them are filled)."""
    if array.ndim == 3:
        array = array.max(axis=2)  # once, here: fill_mask and both warnings read the same (H, W) levels
    mask = fill_mask(array, lossy)
    if lossy:
        noise = int((array > 0).sum() - mask.sum())
        warning = (
            f"mask {name} is a JPEG: {noise} pixels of compression noise (levels 1-{LOSSY_MASK_THRESHOLD}) "
            "are not filled; save masks as PNG to keep them exact"
        )
        return mask, warning if noise else None
    if array.dtype == np.uint8:
        levels = np.flatnonzero(np.bincount(array.ravel(), minlength=256))
    else:
        levels = np.unique(array)
    grey = len(np.setdiff1d(levels, [0, levels.max(initial=0)]))
    warning = f"mask {name} has {grey} grey levels; every level above 0 is filled (masks are usually black and white)"
    return mask, warning if grey > MASK_LEVELS_WARNING else None


def is_lossy(image: Image.Image) -> bool:
    return getattr(image, "format", None) in LOSSY_FORMATS


def load_mask(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A mask file as float32 (H, W): 1.0 where `binarize_mask` says fill (any channel above 0; JPEGs
    above half range), else 0.0; its warning, if any, is issued as a UserWarning."""
    mask, warning = read_mask(Path(path), f"mask {quoted(path)}", max_pixels)
    if warning:
        warnings.warn(warning, stacklevel=2)
    return mask


def save_image(path: str | Path, array: np.ndarray) -> None:
    """Writes uint8 grey (H, W) or RGB (H, W, 3) as PNG/JPEG by suffix, atomically (temp file + rename)."""
    path = Path(path)
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise LatentpaintError(
            f"cannot write {quoted(path)}: expected uint8 (H, W) or (H, W, 3), got {array.dtype} {array.shape}"
        )
    bgr = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    ok, encoded = cv2.imencode(path.suffix or ".png", bgr)
    if not ok:
        raise LatentpaintError(f"cannot write {quoted(path)}: OpenCV has no encoder for {path.suffix!r}")
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
