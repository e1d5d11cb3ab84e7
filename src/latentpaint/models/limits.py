"""Sane ranges for generator architectures that come from files.

A release `config.json`, a LaMa `config.yaml` or a checkpoint's config decides how large a network we
build. These limits are checked before anything is allocated, so a tiny file saying `n_blocks: 1000000`
or `ngf: 100000` is one clear error instead of minutes of allocation and an out-of-memory kill. The
ranges are generous: big-lama is ngf 64, 3 downsamplings, 18 blocks, 51 M parameters.
"""

from __future__ import annotations

import reprlib
from typing import Any

from latentpaint.errors import LatentpaintError

# integer generator arguments: inclusive (low, high)
GENERATOR_RANGES: dict[str, tuple[int, int]] = {
    "input_nc": (1, 16),
    "output_nc": (1, 16),
    "ngf": (1, 512),
    "n_downsampling": (1, 6),
    "n_blocks": (0, 64),
    "max_features": (1, 4096),
}
OUT_ACTIVATIONS = ("sigmoid", "tanh", "none")
# parameters of the whole network (generator + mask control); about 10x big-lama
MAX_PARAMETERS = 500_000_000


def check_generator_args(args: dict[str, Any], source: object) -> None:
    """Raises one `LatentpaintError` line when a generator argument has the wrong type or is out of range.

    Only the arguments present are checked (the rest come from a preset); unknown names are errors.
    """
    for key, value in args.items():
        where = f"{source}: generator {key}"
        if key in GENERATOR_RANGES:
            low, high = GENERATOR_RANGES[key]
            if not isinstance(value, int) or isinstance(value, bool):
                raise LatentpaintError(f"{where} is {_short(value)}, not a whole number")
            if not low <= value <= high:
                raise LatentpaintError(f"{where} is {value}, outside the supported range {low}..{high}")
        elif key == "ratio_g":
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < 1:
                raise LatentpaintError(f"{where} is {_short(value)}, not a number in [0, 1)")
        elif key == "enable_lfu":
            if not isinstance(value, bool):
                raise LatentpaintError(f"{where} is {_short(value)}, not true or false")
        elif key == "upsample":
            from latentpaint.models.generator import UPSAMPLING

            if value not in UPSAMPLING:
                raise LatentpaintError(f"{where} is {_short(value)}; choose one of {', '.join(UPSAMPLING)}")
        elif key == "out_activation":
            if value not in OUT_ACTIVATIONS:
                raise LatentpaintError(
                    f"{where} is {_short(value)}; choose one of {', '.join(OUT_ACTIVATIONS)}"
                )
        else:
            raise LatentpaintError(f"{source}: unknown generator argument {_short(key)}")


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict = 2, 40, 40, 4, 4


def _short(value: object) -> str:
    """A short repr of a value read from a file (safe for deep or huge values) for one-line messages."""
    return _REPR.repr(value)
