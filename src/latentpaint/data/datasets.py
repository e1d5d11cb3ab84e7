"""Training images with seeded crops and masks, a resumable rank-aware sampler, and LaMa evaluation pairs."""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from latentpaint.data.images import (
    IMAGE_EXTENSIONS,
    IMAGE_FORMATS,
    MAX_PIXELS,
    builtin_photos,
    check_same_size,
    list_images,
    load_mask,
    load_rgb,
)
from latentpaint.errors import LatentpaintError, one_line, quoted
from latentpaint.files import path_kind
from latentpaint.masks import get_mask_generator
from latentpaint.models.prefill import HOST_PREFILLS, host_prefill


def _to_uint8_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> uint8 (3, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (3, H, W) in [0, 1]."""
    return _to_uint8_tensor(image).float().div_(255)


# the uint8 items of a TrainingDataset(uint8=True) and how each becomes the float the step uses
IMAGE_KEYS, MASK_KEYS = ("image", "prefill"), ("mask",)


def batch_to_float(batch: dict) -> dict:
    """A uint8 training batch (TrainingDataset(uint8=True)) as float32: images / 255, masks 0 or 1; run on
    the device after the copy. Exactly the values of a float batch; float entries pass unchanged."""
    converted = dict(batch)
    for key in (*IMAGE_KEYS, *MASK_KEYS):
        value = batch.get(key)
        if isinstance(value, torch.Tensor) and value.dtype == torch.uint8:
            converted[key] = value.float().div_(255) if key in IMAGE_KEYS else value.float()
    return converted


def fit_short_side(image: np.ndarray, min_side: int, max_side: int) -> np.ndarray:
    """Resizes (keeping the aspect ratio) so the short side lies in [min_side, max_side]."""
    h, w = image.shape[:2]
    short = min(h, w)
    if min_side <= short <= max_side:
        return image
    target = min_side if short < min_side else max_side
    scale = target / short
    # round, but never below the target: a crop of `min_side` must always fit
    new_w, new_h = max(target, round(w * scale)), max(target, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, (new_w, new_h), interpolation=interpolation)


def _probe(path: Path, max_pixels: int) -> None:
    """Reads only the header: cheap, catches non-images and oversized images but not truncation."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # max_pixels is the limit here
            with Image.open(path, formats=IMAGE_FORMATS) as image:
                too_big = image.width * image.height > max_pixels
    except Exception as exc:  # PIL raises several types for files it cannot identify
        raise LatentpaintError(f"cannot read image {quoted(path)}: {one_line(exc)}") from exc
    if too_big:
        raise LatentpaintError(f"cannot read image {quoted(path)}: above the limit of {max_pixels:,} pixels")


class TrainingDataset(Dataset):
    """Random `size` crops with LaMa masks, addressed by a global sample index, fully seeded.

    Sample i uses image `perm_e[i % N]`, where e = i // N and `perm_e` is a permutation drawn from
    `default_rng([seed, e])`; its crop, flip and mask come from `default_rng([seed, i, 1])`. So item i is
    the same bytes whatever the workers, order or resume point. Any i >= 0 is valid; `len()` is `length`
    (default N) and only matters to code that asks for it.

    Images are resized once on load so the short side is in [size, max_short_side] (default 2 * size):
    small images are upscaled so a crop fits; large ones are shrunk so a crop still shows a scene rather
    than a texture patch (a 256 crop of a 512 image, as in LaMa's training on Places) and so decoded
    images stay small in the cache. With `augmentation="distortions"` LaMa's training augmentation
    (data/augment.py: perspective, affine scale/rotation, optical distortion, colour) replaces the plain
    crop and flip, seeded per sample by `default_rng([seed, i, 2])`; the mask draws are unchanged.

    With `cache` (default: on for up to `cache_max_images` images) every image is decoded at construction
    and kept in memory, which also finds truncated files up front. Without it only headers are checked at
    construction, and a file that fails to decode later raises LatentpaintError naming it.

    With a host `prefill` (models/prefill.py HOST_PREFILLS, e.g. "telea") each item also holds
    `"prefill"`: that fill of the uint8 crop, so training never runs it in the step (the network takes
    it as `prefilled`). With `uint8`, "image" and "prefill" are uint8 (3, H, W) and "mask" uint8 (1, H, W):
    a quarter of the bytes through worker queues, pinned memory and the host-to-device copy; the data
    module turns them into floats on the device (`batch_to_float`), the same values as without it.
    """

    def __init__(
        self,
        source: str | Path = "builtin",
        size: int = 256,
        mask_preset: str = "wide",
        seed: int = 0,
        length: int | None = None,
        cache: bool | None = None,
        cache_max_images: int = 2000,
        max_short_side: int | None = None,
        max_pixels: int = MAX_PIXELS,
        augmentation: str = "none",
        prefill: str = "none",
        uint8: bool = False,
    ):
        from latentpaint.data.augment import create_augmentation

        if size < 1:
            raise LatentpaintError(f"training crop size must be positive, not {size}")
        self.prefill = prefill if prefill in HOST_PREFILLS else None  # device prefills run in the network
        self.uint8 = uint8
        self.size, self.seed, self.max_pixels = size, seed, max_pixels
        self.augment = create_augmentation(augmentation, size)
        self.max_short_side = max(size, max_short_side or 2 * size)
        self.mask_generator = get_mask_generator(mask_preset, size)
        self.paths: list[Path] = []
        self._cache: list[np.ndarray] | None = None
        if str(source) == "builtin":
            photos = builtin_photos()
            self.names = [name for name, _ in photos]
            self._cache = [self._prepare(image) for _, image in photos]
        else:
            self._scan(Path(source), cache, cache_max_images)
        if length is not None and length < 1:
            raise LatentpaintError(f"dataset length must be positive, not {length}")
        self.length = length or len(self.names)
        self._perm: tuple[int, np.ndarray] | None = None

    def _scan(self, folder: Path, cache: bool | None, cache_max_images: int) -> None:
        paths = list_images(folder)
        if not paths:
            raise LatentpaintError(f"no images ({' '.join(IMAGE_EXTENSIONS)}) found in {quoted(folder)}")
        if cache is None:
            cache = len(paths) <= cache_max_images
        load = self._load if cache else (lambda p: _probe(p, self.max_pixels))

        def attempt(path: Path):
            try:
                return load(path), None
            except LatentpaintError as exc:
                return None, str(exc)

        # decoding releases the GIL in PIL and OpenCV, so threads use every core
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            results = list(pool.map(attempt, paths))
        failures = [error for _, error in results if error is not None]
        if len(failures) == len(paths):
            raise LatentpaintError(
                f"none of the {len(paths)} images in {quoted(folder)} is readable; first: {failures[0]}"
            )
        if failures:
            warnings.warn(
                f"skipped {len(failures)} unreadable of {len(paths)} images in {quoted(folder)}; first: {failures[0]}",
                stacklevel=3,
            )
        kept = [(path, result) for path, (result, error) in zip(paths, results, strict=True) if error is None]
        self.paths = [path for path, _ in kept]
        self.names = [path.relative_to(folder).as_posix() for path in self.paths]
        if cache:
            self._cache = [image for _, image in kept]

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        return fit_short_side(image, self.size, self.max_short_side)

    def _load(self, path: Path) -> np.ndarray:
        return self._prepare(load_rgb(path, self.max_pixels))

    def _image(self, index: int) -> np.ndarray:
        if self._cache is not None:
            return self._cache[index]
        return self._load(self.paths[index])

    def _permutation(self, epoch: int) -> np.ndarray:
        # consecutive samples share an epoch: keep the last permutation instead of redrawing it per item
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, epoch]).permutation(len(self.names)))
        return self._perm[1]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if index < 0:
            raise IndexError(f"sample index must be non-negative, not {index}")
        epoch, position = divmod(int(index), len(self.names))
        image = self._image(int(self._permutation(epoch)[position]))
        rng = np.random.default_rng([self.seed, int(index), 1])
        h, w, s = image.shape[0], image.shape[1], self.size
        top, left = int(rng.integers(h - s + 1)), int(rng.integers(w - s + 1))
        crop = image[top : top + s, left : left + s]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if self.augment is not None:  # its own generator: the crop draws above keep the masks identical
            seed = int(np.random.default_rng([self.seed, int(index), 2]).integers(2**31))
            crop = self.augment(image, seed)
        mask = self.mask_generator(s, s, rng)
        convert = _to_uint8_tensor if self.uint8 else _to_tensor
        item = {"image": convert(crop), "mask": torch.from_numpy(mask)[None]}
        if self.uint8:
            item["mask"] = item["mask"].to(torch.uint8)
        if self.prefill is not None:
            item["prefill"] = convert(host_prefill(self.prefill, np.ascontiguousarray(crop), mask))
        return item


class StepSampler(Sampler[int]):
    """Global sample indices for one rank, laid out by optimisation step so a resumed run continues exactly.

    With batch size b per rank and world size w, the global batch of step s holds the indices
    [s*w*b, (s+1)*w*b); rank r takes the slice starting at s*w*b + r*b. The n-th index this rank yields is

        start + (k*w + r)*b + j,   where k, j = divmod(n, b).

    A run resumed at step s uses start = s*w*b (`from_step`) and so sees exactly the samples an
    uninterrupted run would have, on every rank; the ranks' indices are disjoint and together cover each
    global batch.
    """

    def __init__(
        self, num_samples: int, batch_size: int = 1, start: int = 0, rank: int = 0, world_size: int = 1
    ):
        if num_samples < 0 or batch_size < 1 or start < 0:
            raise LatentpaintError(
                f"sampler needs num_samples >= 0, batch_size >= 1, start >= 0 (got {num_samples}, {batch_size}, {start})"
            )
        if not 0 <= rank < world_size:
            raise LatentpaintError(f"rank {rank} is outside a world of {world_size} processes")
        self.num_samples, self.batch_size, self.start = num_samples, batch_size, start
        self.rank, self.world_size = rank, world_size

    @classmethod
    def from_step(
        cls, step: int, num_steps: int, batch_size: int, rank: int = 0, world_size: int = 1
    ) -> StepSampler:
        """The sampler for `num_steps` batches of this rank, beginning at optimisation step `step`."""
        return cls(num_steps * batch_size, batch_size, step * batch_size * world_size, rank, world_size)

    def __iter__(self):
        b, w = self.batch_size, self.world_size
        for n in range(self.num_samples):
            k, j = divmod(n, b)
            yield self.start + (k * w + self.rank) * b + j

    def __len__(self) -> int:
        return self.num_samples


def find_pairs(folder: str | Path) -> list[tuple[Path, Path]]:
    """(image, mask) pairs of a LaMa evaluation folder: `NAME.png` with `NAME_mask000.png`, `NAME_mask001.png`, ..."""
    from latentpaint.data.pairs import lama_pairs, mask_owner

    folder = Path(folder)
    if not folder.is_dir():
        kind = path_kind(folder)
        what = "does not exist" if kind is None else f"is {kind}, not a folder"
        raise LatentpaintError(f"evaluation folder {quoted(folder)} {what}")
    files = sorted(
        (p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
        key=lambda p: p.relative_to(folder).as_posix(),
    )
    if not files:
        raise LatentpaintError(f"evaluation folder {quoted(folder)} holds no images")
    found = lama_pairs(files)
    if found.orphans:
        mask = found.orphans[0]
        raise LatentpaintError(
            f"mask {quoted(mask)} has no image {quoted(mask_owner(mask) + '.png')} next to it"
        )
    if not found.pairs:
        raise LatentpaintError(
            f"evaluation folder {quoted(folder)} holds no NAME_maskNNN.png masks (LaMa's layout)"
        )
    return found.pairs


class EvaluationDataset(Dataset):
    """One item per mask of a LaMa evaluation folder: full-size image and mask tensors plus their names."""

    def __init__(self, folder: str | Path, max_pixels: int = MAX_PIXELS):
        self.folder = Path(folder)
        self.pairs = find_pairs(self.folder)
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        image_path, mask_path = self.pairs[index]
        image = load_rgb(image_path, self.max_pixels)
        mask = load_mask(mask_path, self.max_pixels)
        check_same_size(image, mask, f"mask {quoted(mask_path)}")
        return {
            "image": _to_tensor(image),
            "mask": torch.from_numpy(mask)[None],
            "name": image_path.relative_to(self.folder).with_suffix("").as_posix(),
            "mask_name": mask_path.relative_to(self.folder).with_suffix("").as_posix(),
        }
