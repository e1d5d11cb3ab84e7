"""The inpainting network: how the mask enters (alpha channel or mask control) and E -> R -> D."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from latentpaint.errors import LatentpaintError
from latentpaint.models import prefill as prefills
from latentpaint.models.attention import ATTENTIONS, LatentContextualAttention, latent_cells
from latentpaint.models.delta import DeltaRefiner
from latentpaint.models.ffc import Features, features_to_tensor, map_features
from latentpaint.models.generator import FFCResNetGenerator
from latentpaint.models.limits import check_generator_args
from latentpaint.models.mask_control import MaskControl
from latentpaint.models.registry import create_generator, list_generators

MaskMode = Literal["alpha", "control"]
# none: LaMa's zeros; device prefills run in the forward pass, host prefills before it (models/prefill.py)
PREFILLS = ("none", *prefills.DEVICE_PREFILLS, *prefills.HOST_PREFILLS)
# direct: D(R(z)) is the prediction. residual: the prefill plus the refiner's decoded change,
# prefill + D(R(z)) - D(z), so the autoencoder's own reconstruction error never enters the hole and a
# refiner that has learned nothing returns exactly its prefill (docs/quality.md, session 3).
OUTPUTS = ("direct", "residual")


# -- ModelSpec: the one description of an inpainting network that runs, releases and loaders share ---------
# Its dictionary form is the `model` section of a run config (plus training-only keys) and the top of a
# release `config.json` (plus provenance keys). It lives beside the network it builds because each needs
# the other: a network carries its spec and a spec builds its network; one module, not a circle.
SPEC_KEYS = ("arch", "mask_mode", "delta", "prefill", "overrides", "output", "attention")
MASK_MODES = ("alpha", "control")
# the copy's values are the plain stage-1 encoding of the prefill (mask control off) and its result is a
# change added to the prefill, so contextual attention needs both
CONTEXTUAL_NEEDS = "attention contextual needs mask_mode control and output residual (with a prefill)"


@dataclass(frozen=True)
class ModelSpec:
    """Which generator preset (`arch`) with which keyword `overrides`, and how the mask reaches it."""

    arch: str = "thesis"
    mask_mode: str = "alpha"
    delta: bool = False
    prefill: str = "none"  # absent from configs written before the option: LaMa's zeros
    overrides: Mapping[str, Any] = field(default_factory=dict)
    output: str = "direct"  # absent from configs written before the option: D(R(z))
    attention: str = "none"  # absent from configs written before the option: no latent copying

    def __post_init__(self) -> None:
        # an own plain dict: never the caller's, and a network holding the spec still deep-copies/pickles
        object.__setattr__(self, "overrides", dict(self.overrides))

    @classmethod
    def from_dict(cls, config: Any, source: object = "model config") -> ModelSpec:
        """The spec a run's `model` section or a release `config.json` describes, checked without
        allocating anything (types, names and the generator ranges of `models.limits`).

        Keys other than the seven of the spec (training switches, provenance) are ignored.
        """
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
        output = config.get("output", "direct")
        if output not in OUTPUTS:
            raise LatentpaintError(
                f"{source}: output must be one of {', '.join(OUTPUTS)}, not {str(output)[:40]!r}"
            )
        if output == "residual" and prefill == "none":
            raise LatentpaintError(
                f"{source}: output residual adds to a prefill: set prefill pyramid or telea"
            )
        attention = config.get("attention", "none")
        if attention not in ATTENTIONS:
            raise LatentpaintError(
                f"{source}: attention must be one of {', '.join(ATTENTIONS)}, not {str(attention)[:40]!r}"
            )
        if attention == "contextual" and (mask_mode != "control" or output != "residual"):
            raise LatentpaintError(f"{source}: {CONTEXTUAL_NEEDS}")
        return cls(arch, mask_mode, delta, prefill, overrides, output, attention)

    def to_dict(self) -> dict[str, Any]:
        """The nested form written to release `config.json` files (and read back by `from_dict`)."""
        nested = {
            "arch": self.arch,
            "mask_mode": self.mask_mode,
            "delta": self.delta,
            "prefill": self.prefill,
            "overrides": dict(self.overrides),
        }
        # absent means direct, so releases written before the option read and write back unchanged
        if self.output != "direct":
            nested["output"] = self.output
        if self.attention != "none":
            nested["attention"] = self.attention
        return nested

    def build(self):
        """A fresh `InpaintingNetwork` of this spec (on torch's current default device)."""
        return InpaintingNetwork(
            self.arch, self.mask_mode, self.delta, self.prefill, output=self.output,
            attention=self.attention, **self.overrides,
        )  # fmt: skip

    def autoencoder_generator(self):
        """The stage-1 generator of this spec: the same architecture on RGB input, without the mask."""
        return create_generator(self.arch, **{**self.overrides, "input_nc": 3})

    def plain_encoder(self) -> ModelSpec:
        """This architecture with an RGB encoder and the mask through mask control, which starts as an
        exact identity: a stage-1 autoencoder's weights load into it and E(masked) is the plain encoder."""
        return ModelSpec(self.arch, "control", overrides={**self.overrides, "input_nc": 3})


class InpaintingNetwork(nn.Module):
    """A LaMa generator plus the way the mask reaches it.

    `alpha`: the masked image and the mask are stacked into 4 input channels (LaMa).
    `control`: the 3-channel masked image goes to the encoder and the mask to a `MaskControl` branch.
    With `delta`, the refiner's output is added to its input features (thesis appendix A).
    `prefill="pyramid"` gives the encoder a smooth pyramid fill of the hole instead of zeros, `"telea"`
    OpenCV's Telea fill (`models/prefill.py`); `"none"` is LaMa's convention and the default. A host
    prefill (Telea) is computed on the uint8 image before the network runs and passed in as `prefilled`
    (dataset workers in training, models/apply.py at inference); without it the network computes it
    itself, on the host, which is for convenience and tests only.
    `output="residual"` predicts prefill + D(R(z)) - D(z) instead of D(R(z)) (see OUTPUTS).
    `attention="contextual"` (models/attention.py): the refiner's output only says where to copy from;
    each hole cell of the plain stage-1 encoding z* of the prefill takes the latent patch of its best known
    match, and the prediction is prefill + D(copied z*) - D(z*).
    State-dict keys are `generator.model.*` (LaMa's layout) and `mask_control.*`. `spec` is the
    network's description (`ModelSpec` above): `network.spec.build()` makes an untrained twin.
    """

    def __init__(
        self,
        arch: str = "thesis",
        mask_mode: MaskMode = "alpha",
        delta: bool = False,
        prefill: str = "none",
        output: str = "direct",
        attention: str = "none",
        **overrides,
    ):
        super().__init__()
        if mask_mode not in MASK_MODES:
            raise ValueError(f"mask_mode must be 'alpha' or 'control', not {mask_mode!r}")
        if prefill not in PREFILLS:
            raise ValueError(f"prefill must be one of {', '.join(PREFILLS)}, not {prefill!r}")
        if output not in OUTPUTS or (output == "residual" and prefill == "none"):
            raise ValueError(
                f"output must be one of {', '.join(OUTPUTS)} (residual needs a prefill), not {output!r}"
            )
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}, not {attention!r}")
        if attention == "contextual" and (mask_mode != "control" or output != "residual"):
            raise ValueError(CONTEXTUAL_NEEDS)
        overrides.setdefault("input_nc", 4 if mask_mode == "alpha" else 3)
        self.generator: FFCResNetGenerator = create_generator(arch, **overrides)
        self.spec = ModelSpec(arch, mask_mode, delta, prefill, overrides, output, attention)
        self.mask_mode, self.delta, self.prefill, self.output_kind = mask_mode, delta, prefill, output
        g = self.generator.config
        self.mask_control = (
            MaskControl(g["ngf"], g["n_downsampling"], g["ratio_g"], g["max_features"])
            if mask_mode == "control"
            else None
        )
        self.attention = (
            LatentContextualAttention(self.generator.latent_channels) if attention == "contextual" else None
        )

    @property
    def config(self) -> dict:
        """The spec flattened: generator overrides beside arch/mask_mode/delta, prefill only when set."""
        flat = dict(arch=self.spec.arch, mask_mode=self.mask_mode, delta=self.delta, **self.spec.overrides)
        if self.prefill != "none":  # absent means LaMa's zeros, so configs written before the option match
            flat["prefill"] = self.prefill
        if self.output_kind != "direct":
            flat["output"] = self.output_kind
        if self.attention is not None:
            flat["attention"] = self.spec.attention
        return flat

    @property
    def host_prefill(self) -> str | None:
        """The name of this network's host prefill (`models.prefill.HOST_PREFILLS`), or None."""
        return self.prefill if self.prefill in prefills.HOST_PREFILLS else None

    def masked_image(
        self, image: torch.Tensor, mask: torch.Tensor, prefilled: torch.Tensor | None = None
    ) -> torch.Tensor:
        """What the encoder sees: known pixels kept, missing pixels zero (LaMa) or prefilled.

        `prefilled`: the host prefill of `image` (B, 3, H, W), computed before the call; only networks
        with a host prefill take it. Without it such a network fills on the host itself (slow: tests).
        """
        if prefilled is not None:
            if self.host_prefill is None:
                raise ValueError(f"prefilled is given but this network's prefill is {self.prefill!r}")
            return torch.where(mask > 0.5, prefilled.to(image.dtype), image)
        if self.prefill in prefills.DEVICE_PREFILLS:
            return prefills.DEVICE_PREFILLS[self.prefill](image, mask)
        if self.host_prefill is not None:
            return prefills.host_fill_tensor(self.prefill, image, mask)
        return image * (1 - mask)

    def encode(
        self, image: torch.Tensor, mask: torch.Tensor, prefilled: torch.Tensor | None = None
    ) -> Features:
        """E(masked image), with the mask as 4th channel or through mask control."""
        return self.encode_masked(self.masked_image(image, mask, prefilled), mask)

    def encode_masked(self, masked: torch.Tensor, mask: torch.Tensor) -> Features:
        """E of an already masked (or prefilled) image: `masked_image(image, mask)`."""
        if self.mask_mode == "alpha":
            return self.generator.encode(torch.cat([masked, mask], dim=1))
        return self.generator.encode(masked, controls=self.mask_control(mask))

    def refine(self, z: Features) -> Features:
        """R(z), or z + R(z) for the delta refiner."""
        refiner = self.generator.refiner
        return DeltaRefiner(refiner)(z) if self.delta else refiner(z)

    def decode(self, z: Features) -> torch.Tensor:
        """D(z): features back to an image in [0, 1]."""
        return self.generator.decoder(z)

    def output(
        self, masked: torch.Tensor, z: Features, refined: Features, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The predicted image from the encoder's features `z` of `masked` and the refiner's `refined`:
        D(refined), or masked + D(refined) - D(z) for `output="residual"`; with attention, the copy
        `refined` points to (`copied`; it needs the `mask`)."""
        if self.attention is not None:
            if mask is None:
                raise ValueError("a network with attention needs the mask to place its copy")
            return self.copied(masked, mask, refined)
        if self.output_kind == "residual":
            return (masked + self.decode(refined) - self.decode(z)).clamp(0, 1)
        return self.decode(refined)

    @property
    def latent_factor(self) -> int:
        """Pixels per latent cell along each side (2 ** n_downsampling)."""
        return 2 ** self.generator.config["n_downsampling"]

    def copy_cells(self, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(hole, clean known) cells of the latent grid for `mask` (models/attention.py latent_cells)."""
        return latent_cells(mask, self.latent_factor)

    def copied(self, masked: torch.Tensor, mask: torch.Tensor, refined: Features) -> torch.Tensor:
        """prefill + D(z*') - D(z*): z* the plain stage-1 encoding of the prefilled image, z*' the same
        with every hole cell pasted from the known cells `refined` matches it with (argmax; no gradient)."""
        plain = self.generator.encode(masked)  # the values: what stage 1 encodes, mask control off
        hole, known = self.copy_cells(mask)
        matches = self.attention.best_matches(features_to_tensor(refined), known, hole)
        copied = self.attention.copy(features_to_tensor(plain), matches, hole)
        local = plain[0].shape[1]  # back to (local, global) branches, as the decoder takes them
        pasted = (copied[:, :local], copied[:, local:]) if torch.is_tensor(plain[1]) else (copied, 0)
        return (masked + self.decode(pasted) - self.decode(plain)).clamp(0, 1)

    def forward(
        self, image: torch.Tensor, mask: torch.Tensor, prefilled: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Raw prediction for the whole image (`output`); see `inpaint` for the composited result.
        `prefilled`: the host prefill of `image`, when the network has one (`masked_image`)."""
        masked = self.masked_image(image, mask, prefilled)
        z = self.encode_masked(masked, mask)
        return self.output(masked, z, self.refine(z), mask)

    def inpaint(
        self, image: torch.Tensor, mask: torch.Tensor, prefilled: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Prediction inside the mask, the input everywhere else."""
        return self(image, mask, prefilled) * mask + image * (1 - mask)


def latent_difference(a: Features, b: Features) -> Features:
    """a - b, branch-wise: e.g. E(gt) - E(masked), the damage a mask does in latent space."""
    return map_features(torch.sub, a, b)
