"""Validation rules for run-config values: each takes a value and says what it should have been.

A rule returns None when the value is fine, else what it should be ("an integer >= 1"); `RULES` in
`training/config.py` maps each dotted key to one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from latentpaint.errors import LatentpaintError

Rule = Callable[[Any], "str | None"]  # None: fine; else what the value should be

# the choices of keys whose code sits higher in training/ (optim.py, inpainting.py import them from here)
SCHEDULES = ("constant", "cosine")  # optim.schedule: after linear warm-up, constant or cosine to zero
REFINER_INITS = ("default", "identity")  # model.refiner_init: PyTorch's, or each FFC block x -> x + eps


def integer(lo: int | None = None, hi: int | None = None) -> Rule:
    def check(value: Any) -> str | None:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and (lo is None or value >= lo) and (hi is None or value <= hi):
            return None
        if lo is not None and hi is not None:
            return f"an integer from {lo} to {hi}"
        return (
            "an integer" + (f" >= {lo}" if lo is not None else "") + (f" <= {hi}" if hi is not None else "")
        )

    return check


def number(lo: float = 0.0, hi: float | None = None, above: bool = False) -> Rule:
    """A finite int or float in [lo, hi] (or (lo, hi] with `above`)."""

    def check(value: Any) -> str | None:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if ok and (value > lo if above else value >= lo) and (hi is None or value <= hi):
            return None
        upper = f" and <= {hi:g}" if hi is not None else ""
        return f"a finite number {'>' if above else '>='} {lo:g}{upper}"

    return check


def optional(rule: Rule) -> Rule:
    """`rule`, or null."""

    def check(value: Any) -> str | None:
        problem = None if value is None else rule(value)
        return None if problem is None else f"{problem} or null"

    return check


def fraction(value: Any) -> str | None:
    """A number in [0, 1): decays and Adam betas."""
    return None if number(0.0, 1.0)(value) is None and value < 1 else "a number in [0, 1)"


def pair_of(rule: Rule) -> Rule:
    def check(value: Any) -> str | None:
        if isinstance(value, list | tuple) and len(value) == 2 and all(rule(v) is None for v in value):
            return None
        return f"a list of two values, each {rule(None) or 'valid'}"

    return check


def boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def choice(*options: Any) -> Rule:
    def check(value: Any) -> str | None:
        if any(value == o and type(value) is type(o) for o in options):
            return None
        return "one of " + ", ".join(str(o) for o in options)

    return check


def text(optional: bool = False) -> Rule:
    def check(value: Any) -> str | None:
        if (optional and value is None) or (isinstance(value, str) and value.strip()):
            return None
        return "a non-empty string" + (" or null" if optional else "")

    return check


def generator_arch(value: Any) -> str | None:
    from latentpaint.models.registry import list_generators

    return choice(*list_generators())(value)


def prefill_kind(value: Any) -> str | None:
    from latentpaint.models.network import PREFILLS

    return choice(*PREFILLS)(value)


def output_kind(value: Any) -> str | None:
    from latentpaint.models.network import OUTPUTS

    return choice(*OUTPUTS)(value)


def refiner_init_kind(value: Any) -> str | None:
    return choice(*REFINER_INITS)(value)


def perceptual_backbone(value: Any) -> str | None:
    from latentpaint.losses.perceptual import PERCEPTUAL_BACKBONES

    return choice(*PERCEPTUAL_BACKBONES)(value)


def fid_feature(value: Any) -> str | None:
    from latentpaint.metrics.fid import FID_FEATURES

    return choice(*FID_FEATURES)(value)


def augmentation_kind(value: Any) -> str | None:
    from latentpaint.data.augment import AUGMENTATIONS

    return choice(*AUGMENTATIONS)(value)


def schedule_kind(value: Any) -> str | None:
    return choice(*SCHEDULES)(value)


def mask_preset(value: Any) -> str | None:
    from latentpaint.masks import list_mask_presets

    return choice(*list_mask_presets())(value)


def generator_overrides(value: Any) -> str | None:
    """Generator overrides follow the same ranges as configs read from files (models/limits.py)."""
    from latentpaint.models.limits import check_generator_args

    if not isinstance(value, dict):
        return "a mapping of generator arguments"
    try:
        check_generator_args(value, "model.overrides")
    except LatentpaintError as exc:
        return f"a valid mapping of generator arguments ({exc})"
    return None


def accelerator(value: Any) -> str | None:
    import importlib.util

    local = ("auto", "cpu", "gpu", "cuda", "mps")
    if value in local:
        return None
    if value == "tpu" and importlib.util.find_spec("torch_xla") is not None:
        return None
    return f"one of {', '.join(local)} (tpu needs the torch_xla package)"


def devices(value: Any) -> str | None:
    if value == "auto" or value == -1:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return None
    if isinstance(value, list) and value and all(integer(0)(v) is None for v in value):
        return None
    if isinstance(value, str) and re.fullmatch(r"\d+(,\d+)*,?", value.strip()):
        return None
    return "a number of devices >= 1, -1, 'auto', a list of device indices or '0,1'"


PRECISIONS = (
    "32-true",
    "32",
    "16-mixed",
    "bf16-mixed",
    "16-true",
    "bf16-true",
    "64-true",
    "64",
    "16",
    "bf16",
)


def precision(value: Any) -> str | None:
    """Lightning's precision names; YAML reads `32` and `16` as integers."""
    return choice(*PRECISIONS)(str(value) if isinstance(value, int) else value)
