"""The data room's commands: `latentpaint data photos` (a training set from installed packages, data/photos.py)
and `latentpaint masks` (a LaMa-style evaluation folder, `NAME.png` + `NAME_mask000.png`, from a folder of
images; the masks come from the mask library, masks.py). Only the commands live here, not the work.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from latentpaint.data.photos import OPENCV_SAMPLES
from latentpaint.errors import LatentpaintError, quoted
from latentpaint.files import add_overwrite_flag
from latentpaint.masks import (
    MASK_PRESETS,
    MAX_MASK_AREA,
    draw_masks,
    get_mask_generator,
    list_mask_presets,
    mask_area,
    square_crop,
)
from latentpaint.options import integer, number, side


def register_photos(subparsers) -> None:
    data = subparsers.add_parser(
        "data",
        help="assemble training data: photos from installed packages (no download), prefill banks",
        description="`latentpaint data photos --out photos/`: natural photos from scikit-image, scikit-learn, "
        "matplotlib and (if installed: apt-get install opencv-doc) OpenCV's samples, split train / held-out "
        "by scene, with each photo's source and licence in sources.json. `latentpaint data bank`: training "
        "crops, masks and their host prefill drawn once into one .npz (data/bank.py), for data.train.",
    )
    what = data.add_subparsers(dest="what", required=True, metavar="{photos,bank}")
    p = what.add_parser("photos", help="natural photos from installed packages, split train / held-out")
    p.add_argument("--out", type=Path, required=True, help="output folder (train/, heldout/, sources.json)")
    p.add_argument("--opencv-samples", type=Path, default=OPENCV_SAMPLES,
                   help=f"OpenCV's examples folder (default {OPENCV_SAMPLES}, Debian's opencv-doc)")  # fmt: skip
    p.add_argument(
        "--heldout-fraction", type=float, default=0.15, help="share of scenes held out (default 0.15)"
    )
    p.add_argument("--seed", type=int, default=0, help="which scenes are held out (default 0)")
    p.set_defaults(func=run_photos)
    register_bank(what)


def register_bank(what) -> None:
    from latentpaint.models.prefill import HOST_PREFILLS

    p = what.add_parser(
        "bank",
        help="draw training crops, masks and a host prefill once into a .npz (data.train: BANK.npz)",
        description="Draws --count samples of the training data (the crops and masks a run with the same "
        "seed would draw) and fills each with --prefill in --workers processes, then writes them to --out. "
        "Example: `latentpaint data bank --images photos/train --prefill fsr --size 128 --count 3000 "
        "--out banks/fsr128.npz`, then `train inpainting --set data.train=banks/fsr128.npz`.",
    )
    p.add_argument("--images", default="builtin", help="folder of training images, or builtin (default)")
    p.add_argument("--out", type=Path, required=True, help="the bank file to write (.npz)")
    p.add_argument("--prefill", required=True, choices=list(HOST_PREFILLS), help="the host prefill to store")
    p.add_argument("--size", type=integer(8, 1024), default=128, help="crop side in pixels (default 128)")
    p.add_argument("--count", type=integer(1, 1_000_000), default=3000, help="samples (default 3000)")
    p.add_argument("--mask-preset", default="wide", choices=list_mask_presets(), help="masks (default wide)")
    p.add_argument("--seed", type=integer(0, 2**32 - 1), default=0, help="the run's seed (default 0)")
    p.add_argument("--workers", type=integer(0, 256), default=2, help="filling processes (default 2)")
    add_overwrite_flag(p)
    p.set_defaults(func=run_bank)


def run_bank(args: argparse.Namespace) -> int:
    from latentpaint.data.bank import BANK_SUFFIX, build_bank, is_bank
    from latentpaint.files import check_input_folder, check_outputs

    if not is_bank(args.out):
        raise LatentpaintError(
            f"--out {quoted(args.out)} must end in {BANK_SUFFIX} (data.train reads it by that)"
        )
    if args.images != "builtin":
        check_input_folder(args.images, "--images", "a folder of training images or builtin")
    check_outputs([args.out], [] if args.images == "builtin" else [args.images], args.overwrite)
    report = build_bank(args.images, args.out, args.size, args.count, args.mask_preset, args.prefill,
                        args.seed, args.workers)  # fmt: skip
    print(
        f"wrote {report['samples']} samples ({args.size} px, {args.mask_preset} masks, {args.prefill} prefill, "
        f"{report['bytes'] / 2**20:.0f} MiB) to {args.out} in {report['seconds']:.0f} s"
    )
    return 0


def run_photos(args: argparse.Namespace) -> int:
    from latentpaint.data.photos import assemble
    from latentpaint.files import check_output_folder

    if not 0 <= args.heldout_fraction < 1:
        raise LatentpaintError(f"--heldout-fraction must be in [0, 1), not {args.heldout_fraction}")
    if not args.opencv_samples.is_dir():
        print(f"note: no OpenCV samples at {args.opencv_samples} (apt-get install opencv-doc adds 37 photos)")
    check_output_folder(args.out, "--out")
    records = assemble(args.out, args.opencv_samples, args.heldout_fraction, args.seed)
    train = sum(r.split == "train" for r in records)
    print(
        f"{train} training and {len(records) - train} held-out photos in {args.out} (sources.json lists each)"
    )
    return 0


def register(subparsers) -> None:
    register_photos(subparsers)
    p = subparsers.add_parser(
        "masks",
        help="write a LaMa-style evaluation folder (NAME.png + NAME_mask000.png) from a folder of images",
        description="Each image is resized (short side 256, or 512 for *_512 presets), centre-cropped to a "
        "square and given seeded masks; masks covering more than --max-area of the image are redrawn. "
        "Example: `latentpaint masks --preset thick_256 --images photos --out eval/thick_256 --seed 0`.",
    )
    p.add_argument("--preset", required=True, choices=list_mask_presets(), help="mask preset")
    p.add_argument("--images", required=True, type=Path, help="folder of images (searched recursively)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default 0)")
    p.add_argument("--masks-per-image", type=integer(1, 1000), default=1, help="masks per image (default 1)")
    p.add_argument("--size", type=side, help="output side in pixels (default: the preset's native size)")
    p.add_argument(
        "--max-area",
        type=number(0, 1),
        default=MAX_MASK_AREA,
        help="largest mask area kept (default 0.5, LaMa's)",
    )
    add_overwrite_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from latentpaint.data.images import IMAGE_EXTENSIONS, list_images, load_rgb, save_image
    from latentpaint.files import check_input_folder, check_output_folder, check_outputs

    if args.masks_per_image < 1:
        raise LatentpaintError(f"--masks-per-image must be at least 1, not {args.masks_per_image}")
    if not 0 < args.max_area <= 1:
        raise LatentpaintError(f"--max-area must be in (0, 1], not {args.max_area}")
    preset = MASK_PRESETS[args.preset]
    size = args.size or preset.native_size
    images_dir, out_dir = args.images.resolve(), args.out.resolve()
    if out_dir == images_dir or images_dir in out_dir.parents:
        raise LatentpaintError(
            f"--out {quoted(args.out)} lies inside --images {quoted(args.images)}; a rerun would read its output"
        )
    check_output_folder(args.out, "--out")
    check_input_folder(args.images, "--images", "a folder of images")
    paths = list_images(images_dir)
    if not paths:
        raise LatentpaintError(
            f"no images ({' '.join(IMAGE_EXTENSIONS)}) found in --images {quoted(args.images)}"
        )

    names: dict[str, Path] = {}
    for path in paths:
        rel = path.relative_to(images_dir)
        name = "_".join(rel.with_suffix("").parts)
        if name in names:
            raise LatentpaintError(
                f"{quoted(names[name])} and {quoted(path)} would both be written as {quoted(name + '.png')}; rename one"
            )
        names[name] = path

    outputs = [
        out_dir / f"{name}{suffix}.png"
        for name in names
        for suffix in ["", *(f"_mask{k:03d}" for k in range(args.masks_per_image))]
    ]
    check_outputs(outputs, paths, args.overwrite, where=args.out)
    generator = get_mask_generator(args.preset, size)
    out_dir.mkdir(parents=True, exist_ok=True)
    areas = []
    for index, (name, path) in enumerate(names.items()):
        # one stream per image, seeded by its position: output does not depend on processing order
        rng = np.random.default_rng([args.seed, index])
        image = square_crop(load_rgb(path), size)
        try:
            masks = draw_masks(generator, size, args.masks_per_image, rng, args.max_area)
        except LatentpaintError as exc:
            raise LatentpaintError(f"{quoted(path)}: {exc}") from None
        save_image(out_dir / f"{name}.png", image)
        for k, mask in enumerate(masks):
            save_image(out_dir / f"{name}_mask{k:03d}.png", (mask * 255).astype(np.uint8))
            areas.append(mask_area(mask))
    print(
        f"wrote {len(names)} images and {len(areas)} masks ({args.preset}, {size} px, seed {args.seed}) to "
        f"{args.out}; mean mask area {np.mean(areas):.3f}"
    )
    return 0
