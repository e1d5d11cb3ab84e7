"""`ModelSpec`: the one description of an inpainting network that runs, releases and loaders share.

Its dictionary form, `{arch, mask_mode, delta, prefill, overrides}`, is the `model` section of a run
config (plus training-only keys) and the top of a release `config.json` (plus provenance keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from latentpaint.errors import LatentpaintError

SPEC_KEYS = ("arch", "mask_mode", "delta", "prefill", "overrides")
MASK_MODES = ("alpha", "control")


@dataclass(frozen=True)
class ModelSpec:
    """Which generator preset (`arch`) with which keyword `overrides`, and how the mask reaches it."""

    arch: str = "thesis"
    mask_mode: str = "alpha"
    delta: bool = False
    prefill: str = "none"  # absent from configs written before the option: LaMa's zeros
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # an own plain dict: never the caller's, and a network holding the spec still deep-copies/pickles
        object.__setattr__(self, "overrides", dict(self.overrides))

    @classmethod
    def from_dict(cls, config: Any, source: object = "model config") -> ModelSpec:
        """The spec a run's `model` section or a release `config.json` describes, checked without
        allocating anything (types, names and the generator ranges of `models.limits`).

        Keys other than the five of the spec (training switches, provenance) are ignored.
        """
        from latentpaint.models.limits import check_generator_args
        from latentpaint.models.network import PREFILLS
        from latentpaint.models.registry import list_generators

        if not isinstance(config, Mapping):
            raise LatentpaintError(f"{source}: the model config is not a mapping")
        arch, mask_mode = config.get("arch"), config.get("mask_mode")
        if arch not in list_generators():
            raise LatentpaintError(
                f"{source}: unknown generator arch {str(arch)[:40]!r}; choose one of {', '.join(list_generators())}"
            )
        if mask_mode not in MASK_MODES:
            raise LatentpaintError(
                f"{source}: mask_mode must be 'alpha' or 'control', not {str(mask_mode)[:40]!r}"
            )
        delta = config.get("delta", False)
        if not isinstance(delta, bool):
            raise LatentpaintError(f"{source}: delta must be true or false")
        overrides = config.get("overrides") or {}
        if not isinstance(overrides, Mapping):
            raise LatentpaintError(f"{source}: overrides must be a mapping of generator arguments")
        check_generator_args(dict(overrides), source)
        prefill = config.get("prefill", "none")
        if prefill not in PREFILLS:
            raise LatentpaintError(
                f"{source}: prefill must be one of {', '.join(PREFILLS)}, not {str(prefill)[:40]!r}"
            )
        return cls(arch, mask_mode, delta, prefill, overrides)

    def to_dict(self) -> dict[str, Any]:
        """The nested form written to release `config.json` files (and read back by `from_dict`)."""
        return {
            "arch": self.arch,
            "mask_mode": self.mask_mode,
            "delta": self.delta,
            "prefill": self.prefill,
            "overrides": dict(self.overrides),
        }

    def build(self):
        """A fresh `InpaintingNetwork` of this spec (on torch's current default device)."""
        from latentpaint.models.network import InpaintingNetwork

        return InpaintingNetwork(self.arch, self.mask_mode, self.delta, self.prefill, **self.overrides)

    def autoencoder_generator(self):
        """The stage-1 generator of this spec: the same architecture on RGB input, without the mask."""
        from latentpaint.models.registry import create_generator

        return create_generator(self.arch, **{**self.overrides, "input_nc": 3})

    def plain_encoder(self) -> ModelSpec:
        """This architecture with an RGB encoder and the mask through mask control, which starts as an
        exact identity: a stage-1 autoencoder's weights load into it and E(masked) is the plain encoder."""
        return ModelSpec(self.arch, "control", overrides={**self.overrides, "input_nc": 3})
