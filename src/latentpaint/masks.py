"""LaMa's random masks: irregular brush strokes, boxes, their mixture, and the named train/eval presets.

The generators follow LaMa's `saicinpainting/training/data/masks.py` draw for draw, but take a
`numpy.random.Generator` instead of the global NumPy state, so one seed always gives the same bytes.
`latentpaint masks` (data/cli.py) writes LaMa-style evaluation folders with them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from latentpaint.errors import LatentpaintError

# LaMa's gen_mask_dataset rejects masks covering more than half the image (`max_tamper_area: 0.5`)
MAX_MASK_AREA = 0.5
# resampling attempts per mask before the CLI gives up; thick masks exceed 50 % only a few % of the time
MAX_TRIES = 100


@dataclass(frozen=True)
class IrregularParams:
    """LaMa `make_random_irregular_mask` arguments: polylines of thick brush strokes."""

    max_angle: int
    max_len: int
    max_width: int
    min_times: int
    max_times: int
    # LaMa's constant offsets (length = 10 + U[0, max_len), width = 5 + U[0, max_width)); named here so
    # that scaling to a smaller image shrinks them along with the maxima
    min_len: int = 10
    min_width: int = 5


@dataclass(frozen=True)
class BoxParams:
    """LaMa `make_random_rectangle_mask` arguments: filled axis-aligned boxes."""

    margin: int
    bbox_min_size: int
    bbox_max_size: int
    min_times: int
    max_times: int


@dataclass(frozen=True)
class MaskPreset:
    """A LaMa MixedMaskGenerator configuration: kinds with unnormalised weights, and its native image size."""

    native_size: int
    irregular: IrregularParams | None = None
    box: BoxParams | None = None
    irregular_proba: float = 1.0
    box_proba: float = 0.0

    def scaled(self, size: int | None) -> MaskPreset:
        """This preset for `size`-pixel images: pixel quantities shrink by size/native below native size."""
        if size is None or size >= self.native_size:
            return self
        if size < 1:
            raise LatentpaintError(f"mask size must be a positive number of pixels, not {size}")
        f = size / self.native_size

        def px(value: int, minimum: int) -> int:
            return max(minimum, int(value * f + 0.5))

        irregular = None
        if self.irregular is not None:
            irregular = replace(
                self.irregular,
                max_len=px(self.irregular.max_len, 1),
                max_width=px(self.irregular.max_width, 1),
                min_len=px(self.irregular.min_len, 1),
                min_width=px(self.irregular.min_width, 1),
            )
        box = None
        if self.box is not None:
            lo = px(self.box.bbox_min_size, 1)
            box = replace(
                self.box,
                margin=px(self.box.margin, 0),
                bbox_min_size=lo,
                bbox_max_size=max(lo + 1, px(self.box.bbox_max_size, 1)),
            )
        return replace(self, irregular=irregular, box=box)


def _mixed(native: int, irregular: tuple, box: tuple | None = None, box_proba: float = 0.0) -> MaskPreset:
    """Eval preset from LaMa's config order: (min_times, max_times, max_width, max_angle, max_len) and
    (margin, bbox_min_size, bbox_max_size, max_times, min_times)."""
    i_min, i_max, width, angle, length = irregular
    box_params = None
    if box is not None:
        margin, lo, hi, b_max, b_min = box
        box_params = BoxParams(margin, lo, hi, min_times=b_min, max_times=b_max)
    return MaskPreset(
        native_size=native,
        irregular=IrregularParams(angle, length, width, min_times=i_min, max_times=i_max),
        box=box_params,
        irregular_proba=1.0,  # LaMa's eval configs weigh irregular 1 against box 0.3, then normalise
        box_proba=box_proba,
    )


MASK_PRESETS: dict[str, MaskPreset] = {
    # training masks of LaMa's abl-04-256-mh-dist ("wide" masks in the paper), irregular and box 1:1
    "wide": MaskPreset(
        native_size=256,
        irregular=IrregularParams(max_angle=4, max_len=200, max_width=100, min_times=1, max_times=5),
        box=BoxParams(margin=10, bbox_min_size=30, bbox_max_size=150, min_times=1, max_times=4),
        irregular_proba=1.0,
        box_proba=1.0,
    ),
    # LaMa's configs/data_gen/random_{thin,medium,thick}_{256,512}.yaml
    "thin_256": _mixed(256, (4, 50, 10, 4, 40)),
    "thin_512": _mixed(512, (4, 70, 20, 4, 100)),
    "medium_256": _mixed(256, (4, 5, 50, 4, 100), (0, 10, 50, 5, 1), 0.3),
    "medium_512": _mixed(512, (4, 10, 100, 4, 200), (0, 30, 150, 5, 1), 0.3),
    "thick_256": _mixed(256, (1, 5, 100, 4, 200), (10, 30, 150, 3, 1), 0.3),
    "thick_512": _mixed(512, (1, 5, 250, 4, 450), (10, 30, 300, 4, 1), 0.3),
}


def list_mask_presets() -> list[str]:
    """Names accepted by `get_mask_generator`."""
    return sorted(MASK_PRESETS)


def random_irregular_mask(
    height: int, width: int, rng: np.random.Generator, p: IrregularParams
) -> np.ndarray:
    """LaMa's irregular mask: `times` polylines of 1-5 thick segments; float32 (H, W) in {0, 1}."""
    mask = np.zeros((height, width), np.float32)
    times = rng.integers(p.min_times, p.max_times + 1)
    for i in range(times):
        x, y = int(rng.integers(width)), int(rng.integers(height))
        for _ in range(1 + rng.integers(5)):
            # LaMa draws whole radians (np.random.randint(max_angle)); odd strokes mirror them
            angle = 0.01 + rng.integers(p.max_angle)
            if i % 2 == 0:
                angle = 2 * math.pi - angle
            length = p.min_len + rng.integers(p.max_len)
            brush = int(p.min_width + rng.integers(p.max_width))
            end_x = min(max(int(x + length * math.sin(angle)), 0), width)
            end_y = min(max(int(y + length * math.cos(angle)), 0), height)
            cv2.line(mask, (x, y), (end_x, end_y), 1.0, brush)
            x, y = end_x, end_y
    return mask


def random_box_mask(height: int, width: int, rng: np.random.Generator, p: BoxParams) -> np.ndarray:
    """LaMa's box mask: `times` filled rectangles kept `margin` pixels from the border; float32 (H, W)."""
    margin = p.margin
    if min(height, width) - 2 * margin < 2:
        margin = 0  # image smaller than LaMa assumed: let boxes reach the border rather than fail
    hi = min(p.bbox_max_size, height - 2 * margin, width - 2 * margin)
    lo = min(p.bbox_min_size, hi - 1)
    if lo < 1:
        raise LatentpaintError(f"box masks need an image of at least 2x2 pixels, got {width}x{height}")
    mask = np.zeros((height, width), np.float32)
    times = rng.integers(p.min_times, p.max_times + 1)
    for _ in range(times):
        box_w = int(rng.integers(lo, hi))
        box_h = int(rng.integers(lo, hi))
        x = int(rng.integers(margin, width - margin - box_w + 1))
        y = int(rng.integers(margin, height - margin - box_h + 1))
        mask[y : y + box_h, x : x + box_w] = 1
    return mask


class MaskGenerator:
    """Draws one mask per call from a preset's mixture of kinds (LaMa MixedMaskGenerator)."""

    def __init__(self, preset: MaskPreset, size: int | None = None):
        self.preset = preset.scaled(size)
        self.kinds: list[tuple[str, IrregularParams | BoxParams]] = []
        weights: list[float] = []
        p = self.preset
        if p.irregular is not None and p.irregular_proba > 0:
            self.kinds.append(("irregular", p.irregular))
            weights.append(p.irregular_proba)
        if p.box is not None and p.box_proba > 0:
            self.kinds.append(("box", p.box))
            weights.append(p.box_proba)
        if not self.kinds:
            raise LatentpaintError("mask preset has no mask kind with a positive probability")
        self.probas = np.asarray(weights, np.float64) / sum(weights)

    def __call__(self, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
        """A float32 (height, width) mask, 1 where pixels are to be filled."""
        # a single kind needs no draw
        k = int(rng.choice(len(self.kinds), p=self.probas)) if len(self.kinds) > 1 else 0
        kind, params = self.kinds[k]
        if kind == "irregular":
            return random_irregular_mask(height, width, rng, params)
        return random_box_mask(height, width, rng, params)


def get_mask_generator(preset: str, size: int | None = None) -> MaskGenerator:
    """The generator for a named preset, scaled for `size`-pixel images when below its native size.

    At or above the native size (256 for `wide` and `*_256`, 512 for `*_512`) every number is LaMa's.
    Below it, stroke lengths and widths (including LaMa's +10 / +5 offsets), box margins and box sizes are
    multiplied by size/native and rounded, keeping at least 1 px (margins may reach 0, boxes stay at least
    2 px wide at the top of their range); stroke counts and angles are unchanged, so a 64 px mask covers
    about the same fraction of the image as a 256 px one.
    """
    if preset not in MASK_PRESETS:
        raise LatentpaintError(
            f"unknown mask preset {preset!r}; choose one of {', '.join(list_mask_presets())}"
        )
    return MaskGenerator(MASK_PRESETS[preset], size)


def mask_area(mask) -> float:
    """Fraction of pixels marked for filling (any value > 0)."""
    return float((np.asarray(mask) > 0).mean())


# -- `latentpaint masks` ------------------------------------------------------------------------------


def square_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Resizes the short side to `size` (area filter when shrinking) and cuts the centre square."""
    h, w = image.shape[:2]
    scale = size / min(h, w)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    if (new_w, new_h) != (w, h):
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        image = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return np.ascontiguousarray(image[top : top + size, left : left + size])


def draw_masks(
    generator: MaskGenerator, size: int, count: int, rng: np.random.Generator, max_area: float = MAX_MASK_AREA
) -> list[np.ndarray]:
    """`count` masks for one image, redrawing (same rng) any that is empty or covers more than `max_area`."""
    masks = []
    for _ in range(count):
        for _ in range(MAX_TRIES):
            mask = generator(size, size, rng)
            if 0 < mask_area(mask) <= max_area:
                masks.append(mask)
                break
        else:
            raise LatentpaintError(
                f"no mask with area in (0, {max_area}] after {MAX_TRIES} tries; raise --max-area or pick a "
                "thinner preset"
            )
    return masks
