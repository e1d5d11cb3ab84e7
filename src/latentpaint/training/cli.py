"""`latentpaint train autoencoder|inpainting`: both training stages from a preset plus overrides;
`latentpaint config`: the config's schema, or a preset as it resolves."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from latentpaint.errors import LatentpaintError, quoted
from latentpaint.options import integer

if TYPE_CHECKING:
    from latentpaint.training.config import RunConfig

STAGES = ("autoencoder", "inpainting")
STAGE_NAMES = {"autoencoder": "stage-1 (autoencoder)", "inpainting": "stage-2 (inpainting)"}
# what a run writes beside its checkpoints, checked up front: Lightning's CSV log is written in place (a pipe
# there would block the run), and config.yaml, though written by files.atomic_write, only once the run starts
IN_PLACE = ("config.yaml", "logs/metrics.csv", "logs/hparams.yaml")


def register(subparsers) -> None:
    register_train(subparsers)
    register_config(subparsers)


def register_train(subparsers) -> None:
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


def register_config(subparsers) -> None:
    p = subparsers.add_parser(
        "config",
        help="print the run config's JSON schema, or a preset as it resolves",
        description="`latentpaint config --schema`: every key with its type, default, range and description. "
        "`latentpaint config --preset latent-control --set data.size=128`: the resolved config as YAML.",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--schema", action="store_true", help="print the JSON schema of a run config")
    what.add_argument("--preset", help="print this preset (name or YAML path) resolved, as YAML")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="overrides on top of --preset")
    p.set_defaults(func=show_config)


def show_config(args: argparse.Namespace) -> int:
    import json

    import yaml

    from latentpaint.training.config import schema
    from latentpaint.training.presets import load_preset

    if args.schema:
        if args.set:
            raise LatentpaintError("--set changes a preset; give it with --preset, not --schema")
        print(json.dumps(schema(), indent=2))
    else:
        cfg = load_preset(args.preset, args.set, flag="--preset")
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
    return 0


def resolve_config(args: argparse.Namespace) -> tuple[RunConfig, Path, Path | None]:
    """(config, run folder, checkpoint to resume from) for the parsed command line: the one place `train`
    reads its configuration."""
    from latentpaint.files import REGULAR, check_output_file, check_output_folder, path_kind
    from latentpaint.storage.torchfile import read_training_checkpoint
    from latentpaint.training.callbacks import last_checkpoint
    from latentpaint.training.config import RunConfig, merge
    from latentpaint.training.presets import HARDWARE, hardware, load_preset

    name = args.config or ("autoencoder" if args.stage == "autoencoder" else "latent-control")
    out = Path(args.out or Path("runs") / Path(name).stem)
    resume = None
    # hardware may change between runs of the same config; it is merged in before the one check
    flags = hardware(**{key: getattr(args, key) for key in HARDWARE})
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
        saved, _ = read_training_checkpoint(resume)
        try:  # checked like a preset, so another project's `config` hyperparameter is one clear error
            cfg = RunConfig.read(merge(saved, flags))
        except LatentpaintError as exc:
            raise LatentpaintError(
                f"--resume {quoted(resume)} does not hold a latentpaint run config: {exc}"
            ) from None
    else:
        sets = list(args.set)
        if args.autoencoder:
            sets.append(f"autoencoder={args.autoencoder}")
        if args.data:
            sets.append(f"data.train={args.data}")
        if args.val_data:
            sets.append(f"data.val={args.val_data}")
        cfg = load_preset(name, sets, flags)
    if (cfg.stage == "autoencoder") != (args.stage == "autoencoder"):
        found = STAGE_NAMES.get(cfg.stage, repr(cfg.stage))
        if resume is not None:  # the checkpoint is at fault, not a --config that was never read
            raise LatentpaintError(
                f"--resume {quoted(resume)} is a {found} checkpoint; `train {args.stage}` resumes a "
                f"{STAGE_NAMES[args.stage]} checkpoint"
            )
        raise LatentpaintError(
            f"--config {quoted(name)} is a {found} preset; `train {args.stage}` needs a {STAGE_NAMES[args.stage]} one"
        )
    check_output_folder(out, "--out")
    for written in IN_PLACE:
        check_output_file(out / written, "--out")
    return cfg, out, resume


def run(args: argparse.Namespace) -> int:
    if args.list:
        from latentpaint.training.presets import list_presets

        print("\n".join(list_presets()))
        return 0
    from latentpaint.training.runner import train

    cfg, out, resume = resolve_config(args)
    final = train(cfg, out, resume)
    print(f"checkpoint: {final}")
    return 0
