"""The inpainting network: how the mask enters (alpha channel or mask control) and E -> R -> D."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from latentpaint.models.delta import DeltaRefiner
from latentpaint.models.ffc import Features, map_features
from latentpaint.models.generator import FFCResNetGenerator
from latentpaint.models.mask_control import MaskControl
from latentpaint.models.prefill import pyramid_fill, telea_fill
from latentpaint.models.registry import create_generator
from latentpaint.models.spec import ModelSpec

MaskMode = Literal["alpha", "control"]
PREFILLS = ("none", "pyramid", "telea")


class InpaintingNetwork(nn.Module):
    """A LaMa generator plus the way the mask reaches it.

    `alpha`: the masked image and the mask are stacked into 4 input channels (LaMa).
    `control`: the 3-channel masked image goes to the encoder and the mask to a `MaskControl` branch.
    With `delta`, the refiner's output is added to its input features (thesis appendix A).
    `prefill="pyramid"` gives the encoder a smooth pyramid fill of the hole instead of zeros, `"telea"`
    OpenCV's Telea fill (`models/prefill.py`); `"none"` is LaMa's convention and the default.
    State-dict keys are `generator.model.*` (LaMa's layout) and `mask_control.*`. `spec` is the
    network's description (`models/spec.py`): `network.spec.build()` makes an untrained twin.
    """

    def __init__(
        self,
        arch: str = "thesis",
        mask_mode: MaskMode = "alpha",
        delta: bool = False,
        prefill: str = "none",
        **overrides,
    ):
        super().__init__()
        if mask_mode not in ("alpha", "control"):
            raise ValueError(f"mask_mode must be 'alpha' or 'control', not {mask_mode!r}")
        if prefill not in PREFILLS:
            raise ValueError(f"prefill must be one of {', '.join(PREFILLS)}, not {prefill!r}")
        overrides.setdefault("input_nc", 4 if mask_mode == "alpha" else 3)
        self.generator: FFCResNetGenerator = create_generator(arch, **overrides)
        self.spec = ModelSpec(arch, mask_mode, delta, prefill, overrides)
        self.mask_mode, self.delta, self.prefill = mask_mode, delta, prefill
        g = self.generator.config
        self.mask_control = (
            MaskControl(g["ngf"], g["n_downsampling"], g["ratio_g"], g["max_features"])
            if mask_mode == "control"
            else None
        )

    @property
    def config(self) -> dict:
        """The spec flattened: generator overrides beside arch/mask_mode/delta, prefill only when set."""
        flat = dict(arch=self.spec.arch, mask_mode=self.mask_mode, delta=self.delta, **self.spec.overrides)
        if self.prefill != "none":  # absent means LaMa's zeros, so configs written before the option match
            flat["prefill"] = self.prefill
        return flat

    def masked_image(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """What the encoder sees: known pixels kept, missing pixels zero (LaMa) or prefilled."""
        if self.prefill == "pyramid":
            return pyramid_fill(image, mask)
        if self.prefill == "telea":
            return telea_fill(image, mask)
        return image * (1 - mask)

    def encode(self, image: torch.Tensor, mask: torch.Tensor) -> Features:
        """E(masked image), with the mask as 4th channel or through mask control."""
        masked = self.masked_image(image, mask)
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

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Raw prediction D(R(E(...))) for the whole image; see `inpaint` for the composited result."""
        return self.decode(self.refine(self.encode(image, mask)))

    def inpaint(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Prediction inside the mask, the input everywhere else."""
        return self(image, mask) * mask + image * (1 - mask)


def latent_difference(a: Features, b: Features) -> Features:
    """a - b, branch-wise: e.g. E(gt) - E(masked), the damage a mask does in latent space."""
    return map_features(torch.sub, a, b)
