"""The thesis tables `latentpaint experiment` reruns: their rows, titles, and what each row's preset is."""

from __future__ import annotations

from dataclasses import dataclass

from latentpaint.inference.classical import CLASSICAL_METHODS

# the rows of each table, in the thesis' order; row 1 is the baseline the % changes refer to
TABLES: dict[str, tuple[str, ...]] = {
    "table-5-1": ("pixel-alpha", "pixel-control", "latent-alpha", "latent-control"),
    "table-5-2": ("lama-full", "lama-full-framework"),
    "appendix-a": ("latent-control", "latent-control-delta", "pixel-alpha-delta"),
}
TITLES = {
    "table-5-1": "Table 5.1: mask input (alpha / control), frozen encoder-decoder, pixel vs latent loss",
    "table-5-2": "Table 5.2: LaMa's full loss on the alpha-mask generator vs inside the framework",
    "appendix-a": "Appendix A: a delta refiner with the latent loss (vs plain latent-control) and with the pixel loss",
}
# the classical floor rows (`--classical`, default all): every fill of the registry, nothing to train
CLASSICAL = tuple(CLASSICAL_METHODS)

# metrics.csv columns of the losses a run optimises
PIXEL_L1 = ("train/l1", "pixel L1")
LATENT_L1 = ("train/latent_l1", "latent L1")
TOTAL = ("train/loss", "total loss")


@dataclass(frozen=True)
class Preset:
    """What a shipped preset is, in the table's words, and which logged loss shows its convergence."""

    loss: str
    encoder_decoder: str
    mask: str
    curve: tuple[str, str]  # (metrics.csv column, what it is)


_LAMA_LOSS = (
    "pixel L1 (known 10, missing 0) + adversarial ×10 + R1 + feature matching ×100 + perceptual ×30 "
    "(LaMa's ResNet-PL: ADE20k ResNet-50 dilated encoder, sum of 4 stage MSEs)"
)
# every stage-2 preset of a table, said once; a `--set` that changes one is listed in the report beside it
PRESETS: dict[str, Preset] = {
    "pixel-alpha": Preset("pixel L1", "trainable", "alpha", PIXEL_L1),
    "pixel-control": Preset("pixel L1", "frozen", "control", PIXEL_L1),
    "latent-alpha": Preset("latent L1", "frozen (stem trainable)", "alpha", LATENT_L1),
    "latent-control": Preset("latent L1", "frozen", "control", LATENT_L1),
    "lama-full": Preset(_LAMA_LOSS, "trainable", "alpha", TOTAL),
    "lama-full-framework": Preset(_LAMA_LOSS + " + latent L1 ×0.001", "frozen", "control", TOTAL),
    "latent-control-delta": Preset("latent L1", "frozen", "control, delta refiner", LATENT_L1),
    "pixel-alpha-delta": Preset("pixel L1", "trainable", "alpha, delta refiner", PIXEL_L1),
}


def describe(preset: str) -> dict[str, str]:
    """The table's descriptive columns of a preset: loss, encoder-decoder, mask."""
    p = PRESETS[preset]
    return {"loss": p.loss, "encoder_decoder": p.encoder_decoder, "mask": p.mask}


def loss_curve_key(preset: str) -> tuple[str, str]:
    """(metrics.csv column, what it is) of the loss a preset optimises."""
    return PRESETS[preset].curve
