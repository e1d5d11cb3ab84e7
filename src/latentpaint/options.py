"""Typed, bounded command-line options: a bad value is one line and exit code 2 before any work starts.

`integer(lo, hi)` and `number(lo, hi)` are argparse `type=` callables; the parser (`OneLineParser`) prints
their message on one line instead of the usage block.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import NoReturn

# the largest image side any size option accepts: well above every preset (256, 512) and the HD
# defaults (1280), well below a 100,000 px request that would allocate tens of gigabytes
MAX_SIDE = 8192


def integer(lo: int, hi: int | None = None):
    """An argparse type: an integer in [lo, hi]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < lo or (hi is not None and value > hi):
            bounds = f"from {lo} to {hi}" if hi is not None else f"of at least {lo}"
            raise argparse.ArgumentTypeError(f"must be an integer {bounds}, not {text!r}")
        return value

    parse.__name__ = "integer"
    return parse


def number(lo: float, hi: float | None = None, above: bool = True):
    """An argparse type: a finite float above `lo` (or at least `lo` when not `above`), at most `hi`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        low_ok = value > lo if above else value >= lo
        if not math.isfinite(value) or not low_ok or (hi is not None and value > hi):
            bounds = f"{'above' if above else 'at least'} {lo:g}" + (f" and at most {hi:g}" if hi else "")
            raise argparse.ArgumentTypeError(f"must be a finite number {bounds}, not {text!r}")
        return value

    parse.__name__ = "number"
    return parse


def side(text: str) -> int:
    """An argparse type: an image side in pixels, 1 to `MAX_SIDE`."""
    return integer(1, MAX_SIDE)(text)


class OneLineParser(argparse.ArgumentParser):
    """argparse without the usage block on errors: `PROG: error: MESSAGE` on one line, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise SystemExit(status)
