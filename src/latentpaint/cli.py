"""`latentpaint` command line: one entry point, one subcommand per task.

Each subcommand lives next to the code it drives and exposes `register(subparsers)`; its parser sets
`func`. Heavy imports happen inside the subcommand so `latentpaint --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from latentpaint.errors import LatentpaintError, one_line, os_error_text
from latentpaint.options import OneLineParser

# libraries whose warnings and log lines are about their own internals, not the user's input
FOREIGN = (
    "torch",
    "torchvision",
    "lightning",
    "lightning_fabric",
    "torchmetrics",
    "onnx",
    "onnxscript",
    "PIL",
)

# subcommand modules, in the order a user meets them
SUBCOMMANDS = [
    "latentpaint.data.cli",
    "latentpaint.training.cli",
    "latentpaint.evaluation.cli",
    "latentpaint.evaluation.experiment_cli",
    "latentpaint.viz.cli",
    "latentpaint.inference.cli",
    "latentpaint.server.cli",
    "latentpaint.demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="latentpaint",
        description="Image inpainting in the latent space of a frozen autoencoder (LaMa-compatible).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(name).register(subparsers)
    return parser


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    """`latentpaint: warning: MESSAGE`: no file name, line number or source line of ours."""
    text = " ".join(str(message).split())
    return f"latentpaint: warning: {text}\n"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad option (2, one line already printed)
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    with warnings.catch_warnings():
        # torch, Lightning, ...: their warnings are about their internals, not something a user can act on
        for module in FOREIGN:
            warnings.filterwarnings("ignore", module=rf"{module}(\.|$)")
        format_warning, warnings.formatwarning = warnings.formatwarning, one_line_warning
        try:
            return run_command(args)
        finally:
            warnings.formatwarning = format_warning


def run_command(args: argparse.Namespace) -> int:
    """`args.func(args)`; every error a user can cause ends as one line on stderr (exit 2)."""
    import yaml

    prefix = f"latentpaint {args.command}: error:"
    try:
        code = args.func(args)
    except LatentpaintError as exc:
        print(f"{prefix} {one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, permission denied, ...: the system's sentence and the file's name
        print(f"{prefix} {one_line(os_error_text(exc))}", file=sys.stderr)
        return 2
    except yaml.YAMLError as exc:
        print(f"{prefix} cannot parse YAML: {one_line(exc)}", file=sys.stderr)
        return 2
    except RecursionError:
        print(f"{prefix} the input is nested too deeply to read", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{prefix} out of memory; try a smaller input or a smaller --size", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"latentpaint {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
