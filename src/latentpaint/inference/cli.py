"""`latentpaint predict` and `latentpaint export`."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from latentpaint.errors import LatentpaintError, quoted

PREDICT_HELP = """\
Inpaint images with a model (a latentpaint release folder, a training checkpoint or an official LaMa
folder) or with OpenCV.

Pairing images with masks (a mask is any image; every grey level above 0 means "fill", in JPEG masks
every level above 127, so that their compression noise is not filled):
  --input DIR, no --mask   LaMa: DIR holds NAME.png and its masks NAME_mask.png, NAME_mask000.png, ...
                           (any image extension, subfolders too; the rule `evaluate` uses); one output per
                           mask, named after the mask: OUT/NAME_mask000.png, as LaMa's predict.py writes them.
  --input DIR --mask DIR   IOPaint: the mask of DIR/sub/NAME.jpg is MASKDIR/sub/NAME.<any extension>;
                           output OUT/sub/NAME.png.
  --input DIR --mask FILE  one mask for every image; output OUT/NAME.png.
  --input FILE             with --mask FILE, that mask (output OUT/NAME.png); without, the LaMa masks
                           NAME_mask.*, NAME_maskNNN.* next to it.
--hd-* and --refine apply to --method model; the classical methods fill the whole image: OpenCV's
Telea and Navier-Stokes (radius 3), and the texture fills opencv-shiftmap, opencv-fsr (OpenCV contrib's
xphoto) and patchmatch (patchmatch-cython, seed 0), which take 0.5-5 s per 256 px image on 2 cores.
Outputs are PNG, written atomically; an existing file is replaced only with --overwrite, an input
never. A file that fails is reported on one line and skipped; the others are still written, and the
exit code is then 1.
"""

EXPORT_HELP = """\
Export a model (release folder, training checkpoint or official LaMa folder):
  safetensors  OUT is a folder: config.json + model.safetensors, what Inpainter.from_pretrained prefers.
  onnx         OUT is a file (or a folder for OUT/model.onnx): inputs image (1,3,H,W) in [0,1] and
               mask (1,1,H,W), output inpainted (1,3,H,W); H, W dynamic (>= 9); FFT as ONNX DFT.
  torchscript  OUT is a file (or a folder for OUT/model.pt): a traced program with the same signature.
ONNX and TorchScript files are checked against PyTorch (max abs difference <= 1e-4) before being written.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the `predict` and `export` subcommands."""
    from latentpaint.files import add_overwrite_flag
    from latentpaint.inference.classical import CLASSICAL_METHODS
    from latentpaint.inference.hd import CROP_MARGIN, CROP_TRIGGER_SIZE, RESIZE_LIMIT, STRATEGIES
    from latentpaint.options import MAX_SIDE, integer, side

    p = subparsers.add_parser(
        "predict",
        help="inpaint an image or a folder (LaMa or IOPaint file naming)",
        description=PREDICT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        type=Path,
        metavar="PATH",
        help="release folder, training .ckpt, LaMa folder or a shipped model name (default: default, docs/quality.md)",
    )
    p.add_argument(
        "--input", type=Path, required=True, metavar="DIR|FILE", help="an image file or a folder of images"
    )
    p.add_argument(
        "--mask", type=Path, metavar="DIR|FILE", help="a mask file or a folder of masks (see pairing above)"
    )
    p.add_argument("--output", type=Path, required=True, metavar="DIR", help="folder for the results")
    p.add_argument(
        "--device",
        default="auto",
        help="torch device, e.g. cpu, cuda, cuda:1 (default: auto, CUDA when present)",
    )
    p.add_argument(
        "--dtype", choices=("fp32", "bf16", "fp16"), default="fp32",
        help="precision of the network's forward pass (autocast; default: fp32; bf16 on recent GPUs)",
    )  # fmt: skip
    p.add_argument(
        "--hd-strategy", choices=STRATEGIES, default="crop",
        help="large images: whole image, resized copy, or crops around each mask region (default: crop)",
    )  # fmt: skip
    p.add_argument(
        "--hd-crop-margin",
        type=integer(0, MAX_SIDE),
        default=CROP_MARGIN,
        metavar="PX",
        help=f"default: {CROP_MARGIN}",
    )
    p.add_argument(
        "--hd-crop-trigger", type=side, default=CROP_TRIGGER_SIZE, metavar="PX",
        help=f"crop only when the long side is larger (default: {CROP_TRIGGER_SIZE})",
    )  # fmt: skip
    p.add_argument(
        "--hd-resize-limit", type=side, default=RESIZE_LIMIT, metavar="PX",
        help=f"resize the long side to this when larger (default: {RESIZE_LIMIT})",
    )  # fmt: skip
    p.add_argument("--refine", action="store_true", help="LaMa's multi-scale feature refinement (slow)")
    p.add_argument("--resize-mask", action="store_true", help="resize masks of another size (nearest)")
    p.add_argument(
        "--optimize",
        action="store_true",
        help="BatchNorm folded + channels-last: faster, same result within 1e-4",
    )
    p.add_argument("--method", choices=["model", *CLASSICAL_METHODS], default="model", help="default: model")
    add_overwrite_flag(p)
    p.set_defaults(func=predict_command)

    e = subparsers.add_parser(
        "export",
        help="export a model as safetensors, ONNX or TorchScript",
        description=EXPORT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        metavar="PATH",
        help="release folder, training .ckpt or LaMa folder",
    )
    e.add_argument("--format", choices=("safetensors", "onnx", "torchscript"), required=True)
    e.add_argument("--out", type=Path, required=True, metavar="DIR|FILE", help="folder (safetensors) or file")
    e.add_argument(
        "--opset",
        type=integer(1, 1000),
        default=18,
        metavar="N",
        help="ONNX opset, 18 or newer (default: 18)",
    )
    add_overwrite_flag(e)
    e.set_defaults(func=export_command)


# -- pairing -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    image: Path | None  # None: a mask whose image is missing (reported as failed)
    mask: Path | None  # None: an image without a mask (reported as failed)
    output: Path  # relative to --output


def _lama_jobs(images: list[Path], root: Path) -> list[Job]:
    """Jobs by the one LaMa pairing rule (data.pairs): each mask with its image, the rest as failures."""
    from latentpaint.data.pairs import lama_pairs

    found = lama_pairs(images)
    jobs = [Job(image, mask, mask.relative_to(root).with_suffix(".png")) for image, mask in found.pairs]
    jobs += [Job(None, mask, mask.relative_to(root).with_suffix(".png")) for mask in found.orphans]
    jobs += [Job(image, None, image.relative_to(root).with_suffix(".png")) for image in found.unmasked]
    return sorted(jobs, key=lambda j: j.output.as_posix())


def pair_inputs(input_path: Path, mask_path: Path | None) -> list[Job]:
    """The (image, mask, output name) jobs for the pairing conventions in `PREDICT_HELP`."""
    from latentpaint.data.images import IMAGE_EXTENSIONS, list_images
    from latentpaint.data.pairs import mask_owner
    from latentpaint.files import FOLDER, REGULAR, path_kind

    for flag, path in (("--input", input_path), ("--mask", mask_path)):
        kind = path_kind(path) if path is not None else REGULAR
        if kind is None:
            raise LatentpaintError(f"{flag} {quoted(path)} does not exist")
        if kind not in (REGULAR, FOLDER):
            raise LatentpaintError(
                f"{flag} {quoted(path)} is {kind}; expected an image file or a folder of images"
            )
    if input_path.is_file():
        if mask_path is not None and mask_path.is_file():
            return [Job(input_path, mask_path, Path(input_path.stem + ".png"))]
        if mask_path is not None:
            return pair_inputs_dir([input_path], input_path.parent, mask_path)
        # its own masks only: another file of the same name (a.jpg beside a.png) must not take them
        masks = [
            p
            for p in list_images(input_path.parent)
            if p.parent == input_path.parent and mask_owner(p) == input_path.stem
        ]
        jobs = [j for j in _lama_jobs([input_path, *masks], input_path.parent) if j.image == input_path]
        if not any(j.mask for j in jobs):
            raise LatentpaintError(
                f"no --mask given and no {quoted(input_path.stem + '_mask*.*')} next to {quoted(input_path)}"
            )
        return [j for j in jobs if j.mask]
    images = list_images(input_path)
    if not images:
        raise LatentpaintError(
            f"--input {quoted(input_path)} holds no images ({', '.join(IMAGE_EXTENSIONS)})"
        )
    if mask_path is None:
        jobs = _lama_jobs(images, input_path)
        if not any(j.image and j.mask for j in jobs):
            raise LatentpaintError(
                f"--input {quoted(input_path)} holds no LaMa pairs (NAME.png + NAME_mask000.png); pass --mask "
                "for IOPaint naming"
            )
        return jobs
    return pair_inputs_dir(images, input_path, mask_path)


def pair_inputs_dir(images: list[Path], root: Path, mask_path: Path) -> list[Job]:
    """IOPaint naming: one mask file for all, or the mask with the same relative name in a folder."""
    from latentpaint.data.images import list_images

    if mask_path.is_file():
        return [Job(p, mask_path, p.relative_to(root).with_suffix(".png")) for p in images]
    masks: dict[Path, list[Path]] = {}
    for m in list_images(mask_path):
        masks.setdefault(m.relative_to(mask_path).with_suffix(""), []).append(m)
    jobs = []
    for p in images:
        found = masks.get(p.relative_to(root).with_suffix(""), [])
        if len(found) > 1:  # NAME.png and NAME.jpg: either could be meant, as with two such images
            raise LatentpaintError(
                f"--mask {quoted(mask_path)} holds {len(found)} masks for {quoted(p)} "
                f"({', '.join(quoted(m) for m in found)}); keep one"
            )
        jobs.append(Job(p, found[0] if found else None, p.relative_to(root).with_suffix(".png")))
    if not any(j.mask for j in jobs):
        raise LatentpaintError(
            f"no image in {quoted(root)} has a mask of the same name in --mask {quoted(mask_path)}"
        )
    return jobs


def _check_outputs(jobs: list[Job], output: Path, overwrite: bool = False) -> None:
    """No two jobs write one file; then the shared rule: never an input, existing files only with --overwrite."""
    from latentpaint.files import check_output_folder, check_outputs

    seen: dict[Path, Job] = {}
    for job in jobs:
        if job.output in seen:
            raise LatentpaintError(
                f"{quoted(seen[job.output].image)} and {quoted(job.image)} would both be written to "
                f"{quoted(output / job.output)}"
            )
        seen[job.output] = job
    check_output_folder(output, "--output")
    written = [output / j.output for j in jobs if j.image is not None and j.mask is not None]
    inputs = [p for j in jobs for p in (j.image, j.mask)]
    check_outputs(written, inputs, overwrite, where=output, flag="--output")


# -- predict -------------------------------------------------------------------------------------------
def _predictor(args: argparse.Namespace):
    """(image uint8, mask float) -> uint8 for the chosen method."""
    from latentpaint.inference.hd import inpaint_hd

    if args.method != "model":
        from latentpaint.inference.classical import fill_function

        if args.model is not None or args.refine or args.optimize or args.dtype != "fp32":
            raise LatentpaintError(
                f"--method {args.method} uses no model; drop --model, --refine, --optimize and --dtype"
            )
        return fill_function(args.method)  # a missing backend fails here, before anything is written
    if args.model is None:
        args.model = "default"  # the shipped CPU-recipe model (docs/quality.md)
    from latentpaint.devices import resolve_device
    from latentpaint.inference.checkpoints import load_network
    from latentpaint.inference.inpainter import Inpainter

    inpainter = Inpainter(
        load_network(args.model), device=resolve_device(args.device), optimize=args.optimize, dtype=args.dtype
    )
    predict = inpainter.predict_array
    if args.refine:
        from latentpaint.inference.refine import refine_array

        predict = partial(refine_array, inpainter)
    return partial(
        inpaint_hd, predict, strategy=args.hd_strategy, crop_margin=args.hd_crop_margin,
        crop_trigger_size=args.hd_crop_trigger, resize_limit=args.hd_resize_limit,
    )  # fmt: skip


def _run_job(job: Job, predict, output: Path, resize_mask: bool) -> None:
    import cv2

    from latentpaint.data.images import check_same_size, load_mask, load_rgb, save_image
    from latentpaint.data.pairs import mask_owner

    if job.image is None:
        raise LatentpaintError(
            f"mask {quoted(job.mask)} has no image {quoted(mask_owner(job.mask) + '.*')} next to it"
        )
    if job.mask is None:
        raise LatentpaintError(
            f"image {quoted(job.image)} has no mask (LaMa naming: {quoted(job.image.stem + '_mask*.*')} next to "
            "it; IOPaint naming: the same name in --mask)"
        )
    image, mask = load_rgb(job.image), load_mask(job.mask)
    if mask.shape != image.shape[:2]:
        if not resize_mask:
            check_same_size(image, mask, f"mask {quoted(job.mask)}", " (pass --resize-mask to resize it)")
        mask = cv2.resize(mask, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
    try:
        result = predict(image, mask)
    except LatentpaintError as exc:  # say which file: the method's message cannot
        raise LatentpaintError(f"{quoted(job.image)} (mask {quoted(job.mask)}): {exc}") from None
    target = output / job.output
    target.parent.mkdir(parents=True, exist_ok=True)
    save_image(target, result)


def predict_command(args: argparse.Namespace) -> int:
    """Runs `latentpaint predict`; returns 1 when some files failed."""
    import cv2
    import torch
    from tqdm import tqdm

    from latentpaint.devices import free_cached_memory, is_device_failure
    from latentpaint.errors import one_line, os_error_text

    jobs = pair_inputs(args.input, args.mask)
    _check_outputs(jobs, args.output, args.overwrite)
    predict = _predictor(args)
    args.output.mkdir(parents=True, exist_ok=True)
    failed = 0
    for done, job in enumerate(tqdm(jobs, desc="inpainting", unit="file", disable=None)):
        try:
            _run_job(job, predict, args.output, args.resize_mask)
        except (LatentpaintError, OSError, RuntimeError, cv2.error) as exc:
            failed += 1
            # ours whole (names in it are quoted), a library's first line (torch's and OpenCV's go on)
            text = os_error_text(exc) if isinstance(exc, OSError) else str(exc).strip()
            detail = one_line(text if isinstance(exc, LatentpaintError) else text.partition("\n")[0])
            detail = detail or type(exc).__name__
            tqdm.write(f"latentpaint predict: failed: {detail}", file=sys.stderr)
            if is_device_failure(exc):  # every later file would fail the same way
                failed += len(jobs) - done - 1
                tqdm.write("latentpaint predict: the device failed; stopping", file=sys.stderr)
                break
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                free_cached_memory()  # so fragmentation does not fail the next file too
    print(f"wrote {len(jobs) - failed} of {len(jobs)} results to {args.output}")
    return 1 if failed else 0


# -- export --------------------------------------------------------------------------------------------
def export_command(args: argparse.Namespace) -> int:
    """Runs `latentpaint export`."""
    from latentpaint.files import check_output_folder, check_outputs
    from latentpaint.inference.checkpoints import CONFIG_NAME, WEIGHTS_NAME, load_network

    if args.format == "safetensors":
        check_output_folder(args.out, "--out")  # safetensors export writes a folder
        outputs = [args.out / WEIGHTS_NAME, args.out / CONFIG_NAME]
    else:
        default_name = "model.onnx" if args.format == "onnx" else "model.pt"
        outputs = [args.out / default_name if args.out.is_dir() else args.out]
    check_outputs(outputs, [args.checkpoint], args.overwrite, where=args.out)
    network = load_network(args.checkpoint)
    if args.format == "safetensors":
        from latentpaint.inference.checkpoints import save_release

        save_release(network, args.out, preset=network.config["arch"], source=str(args.checkpoint))
        print(f"wrote {args.out}/config.json and model.safetensors")
        return 0
    from latentpaint.inference.export import export_onnx, export_torchscript

    out = outputs[0]
    if args.format == "onnx":
        diff = export_onnx(network, out, opset=args.opset)
    else:
        diff = export_torchscript(network, out)
    print(f"wrote {out} (max abs difference to PyTorch {diff:.1e})")
    return 0
