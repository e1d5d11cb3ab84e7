"""`latentpaint experiment table-5-1|table-5-2|appendix-a`: the thesis tables, rerun and reported.

One stage-1 autoencoder is shared by every run. Each preset of the table trains with the same step budget
once per seed, inpaints the evaluation set and is scored with MetricSuite, beside the classical fills
(OpenCV Telea, Navier-Stokes, shift-map, FSR; PatchMatch) as the floor. The result is `<out>/report.md` + `report.json` with loss curves, a sample grid and the
latent damage map. table-5-2 also has row (0), the authors' LaMa checkpoint scored on the same set
(`--lama-folder big-lama/`). Every run leaves a `done.json`, so the same command after a kill skips
finished runs and resumes an unfinished one from its last checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from latentpaint.errors import LatentpaintError, quoted
from latentpaint.evaluation.tables import CLASSICAL, TABLES, TITLES
from latentpaint.inference.classical import missing_backend
from latentpaint.options import integer, side


def loader_workers(text: str) -> int | str:
    """An argparse type for data.num_workers: auto, or an integer from 0 to 256."""
    if text == "auto":
        return text
    try:
        return integer(0, 256)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be auto or an integer from 0 to 256, not {text!r}") from None


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "experiment",
        help="rerun a thesis table (train every row per seed, evaluate, write report.md/json + figures)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("table", choices=list(TABLES), help="which table: " + "; ".join(TITLES.values()))
    p.add_argument(
        "--data", default="builtin", help="training images: a folder, or 'builtin' (default; the "
        "built-in photos without the held-out ones)",
    )  # fmt: skip
    p.add_argument(
        "--eval-data", default="builtin", help="LaMa evaluation folder (NAME.png + NAME_maskNNN.png, e.g. from "
        "`latentpaint masks`), or 'builtin' (default: the held-out built-in photos, thick_256 masks, --size px)",
    )  # fmt: skip
    p.add_argument("--steps", type=integer(1), required=True, help="stage-2 training steps of every run")
    p.add_argument("--seeds", type=integer(1, 1000), default=3, help="runs per row, seeds 0..N-1 (default 3)")
    p.add_argument("--out", type=Path, required=True, help="experiment folder (rerun the command to resume)")
    p.add_argument("--autoencoder-steps", type=integer(1), help="stage-1 steps (default: --steps)")
    p.add_argument("--autoencoder", type=Path, help="reuse this stage-1 checkpoint instead of training one")
    p.add_argument("--size", type=side, default=256, help="training crop size (default 256)")
    p.add_argument("--batch-size", type=integer(1, 4096), default=8)
    p.add_argument(
        "--num-workers", type=loader_workers, default="auto", help="data loader workers per training process "
        "(default auto: min(8, cores per process) on CUDA, else 2)",
    )  # fmt: skip
    p.add_argument(
        "--metrics", default="ssim,psnr,lpips,fid", help="subset of ssim,psnr,lpips,fid (default: all)"
    )
    p.add_argument("--ssim-convention", default="lama", metavar="{lama,skimage}", help="default: lama")
    p.add_argument(
        "--fid-feature", default="fid-helper", metavar="{fid-helper,pytorch-fid,stand-in}",
        help="FID Inception (default fid-helper; stand-in is for tests only)",
    )  # fmt: skip
    p.add_argument(
        "--weights-dir", type=Path, help="folder with vgg16-397923af.pth (LPIPS), "
        "ade20k/ade20k-resnet50dilated-ppm/encoder_epoch_20.pth (LaMa's ResNet-PL of table-5-2; or "
        "resnet50-0676ba61.pth with loss.perceptual_backbone=resnet50), pt_inception-2015-12-05-6726825d.pth; "
        "nothing is downloaded",
    )  # fmt: skip
    p.add_argument(
        "--lama-folder", type=Path, metavar="DIR", help="table-5-2 only: the official LaMa folder (big-lama/ "
        "with config.yaml + models/best.ckpt), evaluated on the same set as row (0), the authors' checkpoint",
    )  # fmt: skip
    p.add_argument(
        "--classical", type=_names, default=CLASSICAL, metavar="NAME,...",
        help=f"classical floor rows, scored on the same masks (default: all: {','.join(CLASSICAL)})",
    )  # fmt: skip
    p.add_argument("--accelerator", help="cpu, gpu, auto, ... (Lightning)")
    p.add_argument("--devices", help="number of devices or 'auto' (Lightning)")
    p.add_argument(
        "--set", nargs="+", default=[], metavar="KEY=VALUE",
        help="config overrides for every run, e.g. loss.perceptual=0 (reported)",
    )  # fmt: skip
    p.set_defaults(func=run)


def _names(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))


def check(args: argparse.Namespace) -> None:
    """One-line errors for options that contradict each other or name nothing, before anything runs."""
    for flag, value in (
        ("--steps", args.steps),
        ("--seeds", args.seeds),
        ("--size", args.size),
        ("--batch-size", args.batch_size),
    ):
        if value < 1:
            raise LatentpaintError(f"{flag} must be at least 1, not {value}")
    if args.autoencoder_steps is not None and args.autoencoder_steps < 1:
        raise LatentpaintError(f"--autoencoder-steps must be at least 1, not {args.autoencoder_steps}")
    if args.data != "builtin" and not Path(args.data).is_dir():
        raise LatentpaintError(
            f"--data {quoted(args.data)} is not a folder (give a training folder or 'builtin')"
        )
    if args.lama_folder is not None and args.table != "table-5-2":
        raise LatentpaintError(
            f"--lama-folder adds row (0) of table-5-2 (the authors' checkpoint); {args.table} has no such row"
        )
    for name in args.classical:  # an unknown name or a missing library fails now, not after the training
        if name not in CLASSICAL:
            raise LatentpaintError(
                f"--classical: unknown method {quoted(name)}; choose from {', '.join(CLASSICAL)}"
            )
        if (why := missing_backend(name)) is not None:
            raise LatentpaintError(f"{why}; or leave it out with --classical")
    if args.autoencoder is not None and args.autoencoder_steps is not None:
        raise LatentpaintError(
            "give --autoencoder (reuse a checkpoint) or --autoencoder-steps (train one), not both"
        )


def run(args: argparse.Namespace) -> int:
    """Runs `latentpaint experiment`: the options are checked here, the experiment in evaluation.experiment."""
    from latentpaint.evaluation.experiment import run_experiment

    check(args)
    return run_experiment(args)
