"""Generator presets, timm-style: one small function per preset, keyword arguments override."""

from __future__ import annotations

from collections.abc import Callable

from latentpaint.errors import LatentpaintError
from latentpaint.models.generator import FFCResNetGenerator

_PRESETS: dict[str, Callable[..., FFCResNetGenerator]] = {}


def register_generator(fn: Callable[..., FFCResNetGenerator]) -> Callable[..., FFCResNetGenerator]:
    _PRESETS[fn.__name__.replace("_", "-")] = fn
    return fn


@register_generator
def big_lama(**overrides) -> FFCResNetGenerator:
    """LaMa's released big-lama: 18 FFC blocks, 50,975,875 parameters."""
    return FFCResNetGenerator(
        **{**dict(input_nc=4, ngf=64, n_downsampling=3, n_blocks=18, ratio_g=0.75), **overrides}
    )


@register_generator
def lama_fourier(**overrides) -> FFCResNetGenerator:
    """LaMa-Fourier: big-lama with 9 FFC blocks, 27,048,835 parameters."""
    return FFCResNetGenerator(
        **{**dict(input_nc=4, ngf=64, n_downsampling=3, n_blocks=9, ratio_g=0.75), **overrides}
    )


@register_generator
def thesis(**overrides) -> FFCResNetGenerator:
    """The thesis experiments' generator: LaMa-Fourier at ngf 8 (about 0.43 M parameters)."""
    return FFCResNetGenerator(
        **{**dict(input_nc=4, ngf=8, n_downsampling=3, n_blocks=9, ratio_g=0.75), **overrides}
    )


def list_generators() -> list[str]:
    """Names accepted by `create_generator`."""
    return sorted(_PRESETS)


def create_generator(name: str, **overrides) -> FFCResNetGenerator:
    """Builds the preset `name` (e.g. "big-lama"), with keyword overrides such as `input_nc=3`."""
    if name not in _PRESETS:
        raise LatentpaintError(f"unknown generator {name!r}; choose one of {', '.join(list_generators())}")
    return _PRESETS[name](**overrides)
