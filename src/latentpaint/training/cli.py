"""`latentpaint train autoencoder|inpainting`: both training stages from a preset plus overrides."""

from __future__ import annotations

import argparse
from pathlib import Path

from latentpaint.errors import LatentpaintError, quoted
from latentpaint.options import integer

STAGES = ("autoencoder", "inpainting")
STAGE_NAMES = {"autoencoder": "stage-1 (autoencoder)", "inpainting": "stage-2 (inpainting)"}
# what a run writes in place rather than through files.atomic_write (the config copy, Lightning's CSV log):
# checked up front, since a pipe there would block the run
IN_PLACE = ("config.yaml", "logs/metrics.csv", "logs/hparams.yaml")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train stage 1 (autoencoder) or stage 2 (inpainting)",
        description="Stage 1: `latentpaint train autoencoder --config autoencoder`. "
        "Stage 2: `latentpaint train inpainting --config latent-control --autoencoder runs/autoencoder/checkpoints/last.ckpt`.",
    )
    p.add_argument("stage", choices=STAGES)
    p.add_argument(
        "--config", help="preset name (see --list) or YAML path; default: autoencoder / latent-control"
    )
    p.add_argument("--list", action="store_true", help="list the shipped presets and exit")
    p.add_argument("--out", help="run folder (default runs/<config name>)")
    p.add_argument("--autoencoder", help="stage-1 checkpoint (sets `autoencoder`)")
    p.add_argument("--data", help="training images: a folder or 'builtin' (sets data.train)")
    p.add_argument(
        "--val-data",
        metavar="DIR",
        help="inpainting: LaMa-layout folder (NAME.png + NAME_mask000.png, see `latentpaint masks`) scored "
        "with ssim_fid100_f1 every trainer.val_check_interval steps; the best checkpoints are kept (sets data.val)",
    )
    p.add_argument(
        "--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides, e.g. data.size=128"
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const="last",
        help="continue from a checkpoint (default: <out>/checkpoints/last.ckpt)",
    )
    p.add_argument("--accelerator", help="cpu, gpu, auto, ... (Lightning)")
    p.add_argument("--devices", help="number of devices or 'auto' (Lightning)")
    p.add_argument("--num-nodes", type=integer(1, 10_000), help="nodes for multi-node DDP (Lightning)")
    p.add_argument("--strategy", help="auto, ddp, ddp_spawn, ... (Lightning)")
    p.set_defaults(func=run)


def resolve_config(args: argparse.Namespace) -> tuple[dict, Path, Path | None]:
    """(config, run folder, checkpoint to resume from) for the parsed command line."""
    from latentpaint.files import REGULAR, check_output_file, check_output_folder, path_kind
    from latentpaint.storage.torchfile import read_training_checkpoint
    from latentpaint.training.config import (
        DEFAULTS,
        HARDWARE,
        apply_hardware,
        apply_overrides,
        deep_merge,
        load_preset,
    )
    from latentpaint.training.runner import last_checkpoint

    name = args.config or ("autoencoder" if args.stage == "autoencoder" else "latent-control")
    out = Path(args.out or Path("runs") / Path(name).stem)
    resume = None
    if args.resume:
        resume = last_checkpoint(out) if args.resume == "last" else Path(args.resume)
        kind = path_kind(resume)
        if kind is None:
            raise LatentpaintError(f"nothing to resume: no checkpoint {quoted(resume)} yet")
        if kind != REGULAR:
            raise LatentpaintError(f"--resume {quoted(resume)} is {kind}; expected a checkpoint file (.ckpt)")
        if args.resume != "last" and not args.out:
            out = resume.parent.parent
        # a checkpoint carries its run's configuration: resuming never depends on today's flags
        config, _ = read_training_checkpoint(resume)
        try:  # checked like a preset, so another project's `config` hyperparameter is one clear error
            config = deep_merge(DEFAULTS, config)
        except LatentpaintError as exc:
            raise LatentpaintError(
                f"--resume {quoted(resume)} does not hold a latentpaint run config: {exc}"
            ) from None
    else:
        config = load_preset(name)
        sets = list(args.set)
        if args.autoencoder:
            sets.append(f"autoencoder={args.autoencoder}")
        if args.data:
            sets.append(f"data.train={args.data}")
        if args.val_data:
            sets.append(f"data.val={args.val_data}")
        config = apply_overrides(config, sets)
    # hardware may change between runs of the same config
    config = apply_hardware(config, **{key: getattr(args, key) for key in HARDWARE})
    if (config["stage"] == "autoencoder") != (args.stage == "autoencoder"):
        found = STAGE_NAMES.get(config["stage"], repr(config["stage"]))
        if resume is not None:  # the checkpoint is at fault, not a --config that was never read
            raise LatentpaintError(
                f"--resume {quoted(resume)} is a {found} checkpoint; `train {args.stage}` resumes a "
                f"{STAGE_NAMES[args.stage]} checkpoint"
            )
        raise LatentpaintError(
            f"--config {quoted(name)} is a {found} preset; `train {args.stage}` needs a {STAGE_NAMES[args.stage]} one"
        )
    check_output_folder(out, "--out")
    for name in IN_PLACE:
        check_output_file(out / name, "--out")
    return config, out, resume


def run(args: argparse.Namespace) -> int:
    if args.list:
        from latentpaint.training.config import list_presets

        print("\n".join(list_presets()))
        return 0
    from latentpaint.training.runner import train

    config, out, resume = resolve_config(args)
    final = train(config, out, resume)
    print(f"checkpoint: {final}")
    return 0
