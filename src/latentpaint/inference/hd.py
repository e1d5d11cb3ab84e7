"""High-resolution strategies (IOPaint's `HDStrategy`): run the network on the whole image, a resized
copy, or crops around each masked region.

Defaults are IOPaint's (`InpaintRequest`): strategy `crop`, crop trigger 800 px, crop margin 128 px,
resize limit 1280 px. Two deliberate differences, both so that every pixel outside the mask is exactly
the input's: each crop pastes back only the masked pixels of its own mask region (IOPaint pastes whole
crops), and `resize` shrinks the mask by area and marks every touched pixel, so thin strokes survive the
downscaling (IOPaint resizes the mask bicubically).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Literal

import cv2
import numpy as np

from latentpaint.data.images import check_same_size
from latentpaint.errors import LatentpaintError

Strategy = Literal["original", "resize", "crop"]
STRATEGIES: tuple[str, ...] = ("original", "resize", "crop")
CROP_MARGIN = 128
CROP_TRIGGER_SIZE = 800
RESIZE_LIMIT = 1280
# `crop` with a dotted or speckled mask: past this many regions the crops would take longer than one pass
# over the image (hours for thousands of dots), so the whole image is inpainted instead (`resize` when it
# is above the resize limit), with a warning saying so
MAX_CROP_REGIONS = 256
# after overlapping windows are merged, more crops than this also fall back to one pass
MAX_CROPS = 32

Predict = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _predict_fn(inpainter) -> Predict:
    """An `Inpainter` (its `predict_array`) or any callable (uint8 image, float mask) -> uint8 image."""
    return inpainter.predict_array if hasattr(inpainter, "predict_array") else inpainter


def mask_boxes(mask: np.ndarray) -> list[tuple[int, int, int, int, np.ndarray]]:
    """(left, top, right, bottom, component mask) of each 8-connected masked region, largest first."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
    order = sorted(range(1, n), key=lambda i: -stats[i, cv2.CC_STAT_AREA])
    boxes = []
    for i in order:
        x, y, w, h = (int(v) for v in stats[i, :4])
        boxes.append((x, y, x + w, y + h, labels[y : y + h, x : x + w] == i))
    return boxes


def crop_window(
    box: tuple[int, int, int, int], margin: int, height: int, width: int
) -> tuple[int, int, int, int]:
    """The box grown by `margin` on each side, shifted back inside the image where it sticks out
    (so crops at the border still get their full context), then clamped: (left, top, right, bottom)."""

    def span(lo: int, hi: int, size: int) -> tuple[int, int]:
        centre, half = (lo + hi) // 2, (hi - lo + 2 * margin) // 2
        start, stop = centre - half, centre + half
        if start < 0:
            start, stop = 0, stop - start
        if stop > size:
            start, stop = start - (stop - size), size
        return max(start, 0), min(stop, size)

    left, right = span(box[0], box[2], width)
    top, bottom = span(box[1], box[3], height)
    # the centred window can round one pixel short of the box; it must always contain it
    return min(left, box[0]), min(top, box[1]), max(right, box[2]), max(bottom, box[3])


def resize_long_side(array: np.ndarray, limit: int, interpolation: int) -> np.ndarray:
    """`array` with its long side shrunk to `limit` (aspect kept, sizes rounded as IOPaint)."""
    h, w = array.shape[:2]
    ratio = limit / max(h, w)
    size = (max(1, int(w * ratio + 0.5)), max(1, int(h * ratio + 0.5)))
    return cv2.resize(array, size, interpolation=interpolation)


def long_side_within(height: int, width: int, max_pixels: int) -> int:
    """The long side that keeps a resized (aspect-kept) copy of a height x width image within `max_pixels`."""
    return max(1, int((max_pixels * max(height, width) / min(height, width)) ** 0.5))


def inpaint_hd(
    inpainter,
    image: np.ndarray,
    mask: np.ndarray,
    strategy: Strategy = "crop",
    crop_margin: int = CROP_MARGIN,
    crop_trigger_size: int = CROP_TRIGGER_SIZE,
    resize_limit: int = RESIZE_LIMIT,
) -> np.ndarray:
    """uint8 (H, W, 3) image + (H, W) mask (> 0 = fill) -> uint8 (H, W, 3), with one of the HD strategies.

    `original`: the whole image at once. `resize`: when the long side exceeds `resize_limit`, inpaint a
    copy shrunk to it and upscale the result (bicubic) into the masked pixels. `crop`: when the long side
    exceeds `crop_trigger_size`, inpaint one crop per connected mask region (its box plus `crop_margin`;
    overlapping crops merged into one) and paste the region's pixels back; a mask with too many regions
    (`plan_crops`) falls back to `resize` above the resize limit, else `original`, with a warning. Below the thresholds every strategy is `original`. Whatever
    `inpainter` returns, only masked pixels are taken from it.
    """
    if strategy not in STRATEGIES:
        raise LatentpaintError(f"unknown HD strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise LatentpaintError(f"image must be a uint8 (H, W, 3) array, got {image.dtype} {image.shape}")
    check_same_size(image, mask)
    if crop_margin < 0 or crop_trigger_size < 1 or resize_limit < 1:
        raise LatentpaintError(
            f"HD sizes must be positive (crop margin {crop_margin}, crop trigger {crop_trigger_size}, "
            f"resize limit {resize_limit})"
        )
    mask = (mask > 0).astype(np.float32)
    predict = _predict_fn(inpainter)
    if not mask.any():
        return image.copy()
    long_side = max(image.shape[:2])
    if strategy == "resize" and long_side > resize_limit:
        return _inpaint_resized(predict, image, mask, resize_limit)
    if strategy == "crop" and long_side > crop_trigger_size:
        windows = plan_crops(mask, crop_margin)
        if windows is not None:
            return _inpaint_crops(predict, image, mask, windows)
        fallback = "resize" if long_side > resize_limit else "original"
        warnings.warn(
            f"the mask has too many separate regions for --hd-strategy crop (more than {MAX_CROP_REGIONS} "
            f"regions or {MAX_CROPS} merged crops): used --hd-strategy {fallback} for this image",
            stacklevel=2,
        )
        if fallback == "resize":
            return _inpaint_resized(predict, image, mask, resize_limit)
    return np.where(mask[..., None] > 0, predict(image, mask), image)


def _inpaint_resized(predict: Predict, image: np.ndarray, mask: np.ndarray, limit: int) -> np.ndarray:
    small_image = resize_long_side(image, limit, cv2.INTER_CUBIC)
    # INTER_AREA averages: any pixel a masked pixel falls into stays masked, so nothing is lost
    small_mask = (resize_long_side(mask, limit, cv2.INTER_AREA) > 0).astype(np.float32)
    small = predict(small_image, small_mask)
    big = cv2.resize(small, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_CUBIC)
    return np.where(mask[..., None] > 0, big, image)


Window = tuple[int, int, int, int]


def _overlap(a: Window, b: Window) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def plan_crops(mask: np.ndarray, margin: int) -> list[tuple[Window, list]] | None:
    """The crops for `crop`: (window, mask regions inside it); overlapping windows are merged into one.

    None when the mask has more than `MAX_CROP_REGIONS` regions, or its merged windows are more than
    `MAX_CROPS` or cover more pixels than the image: one pass over the whole image is then cheaper.
    """
    count = cv2.connectedComponents((mask > 0).astype(np.uint8), connectivity=8)[0] - 1
    if count > MAX_CROP_REGIONS:
        return None
    height, width = mask.shape
    plan: list[tuple[Window, list]] = [
        (crop_window(box[:4], margin, height, width), [box]) for box in mask_boxes(mask)
    ]
    merged = True
    while merged:  # windows grown by a merge may now overlap others: repeat until none do
        merged = False
        out: list[tuple[Window, list]] = []
        for window, members in plan:
            for k, (other, others) in enumerate(out):
                if _overlap(window, other):
                    union = (
                        min(window[0], other[0]), min(window[1], other[1]),
                        max(window[2], other[2]), max(window[3], other[3]),
                    )  # fmt: skip
                    out[k] = (union, others + members)
                    merged = True
                    break
            else:
                out.append((window, members))
        plan = out
    area = sum((x1 - x0) * (y1 - y0) for (x0, y0, x1, y1), _ in plan)
    if len(plan) > MAX_CROPS or area > height * width:
        return None
    return plan


def _inpaint_crops(
    predict: Predict, image: np.ndarray, mask: np.ndarray, plan: list[tuple[Window, list]]
) -> np.ndarray:
    result = image.copy()
    for (x0, y0, x1, y1), members in plan:
        # the crop sees every masked pixel in it as missing, including other regions' pixels
        crop = predict(image[y0:y1, x0:x1], mask[y0:y1, x0:x1])
        for left, top, right, bottom, region in members:
            target = result[top:bottom, left:right]
            target[region] = crop[top - y0 : bottom - y0, left - x0 : right - x0][region]
    return result


def inpaint_within(
    predict: Predict, image: np.ndarray, mask: np.ndarray, max_pixels: int
) -> tuple[np.ndarray, str]:
    """Inpaints with the network never seeing more than `max_pixels` at once: (result, strategy used).

    At or below the budget: the whole image (`original`). Above it: `crop` when every merged crop fits
    the budget, else `resize` to the largest copy that fits. Known pixels stay exact either way.
    """
    mask = (mask > 0).astype(np.float32)
    height, width = mask.shape
    if height * width <= max_pixels or not mask.any():
        return np.where(mask[..., None] > 0, predict(image, mask), image), "original"
    # the usual context margin, smaller when the budget is so small that it would not fit
    plan = plan_crops(mask, min(CROP_MARGIN, int(max_pixels**0.5) // 4))
    if plan is not None and all((x1 - x0) * (y1 - y0) <= max_pixels for (x0, y0, x1, y1), _ in plan):
        return _inpaint_crops(predict, image, mask, plan), "crop"
    return _inpaint_resized(predict, image, mask, long_side_within(height, width, max_pixels)), "resize"
