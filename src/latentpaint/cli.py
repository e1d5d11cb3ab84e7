"""`latentpaint` command line: one entry point, one subcommand per task.

Each subcommand lives next to the code it drives and exposes `register(subparsers)`; its parser sets
`func`. Heavy imports happen inside the subcommand so `latentpaint --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from latentpaint.errors import LatentpaintError

# subcommand modules, in the order a user meets them
SUBCOMMANDS = [
    "latentpaint.data.photos",
    "latentpaint.masks",
    "latentpaint.training.cli",
    "latentpaint.evaluation.cli",
    "latentpaint.evaluation.experiment",
    "latentpaint.viz.cli",
    "latentpaint.inference.cli",
    "latentpaint.server.cli",
    "latentpaint.demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentpaint",
        description="Image inpainting in the latent space of a frozen autoencoder (LaMa-compatible).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = args.func(args)
    except LatentpaintError as exc:
        print(f"latentpaint {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, permission denied, ...: the system's sentence names the file
        print(f"latentpaint {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"latentpaint {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
