"""Networks: LaMa's FFC generator split into encoder / refiner / decoder, mask control, discriminator."""

from latentpaint.models.delta import DeltaRefiner
from latentpaint.models.discriminator import NLayerDiscriminator
from latentpaint.models.ffc import FFC, FFC_BN_ACT, FFCResnetBlock, FourierUnit, SpectralTransform
from latentpaint.models.generator import FFCResNetGenerator
from latentpaint.models.mask_control import MaskControl, zero_module
from latentpaint.models.network import InpaintingNetwork
from latentpaint.models.registry import create_generator, list_generators

__all__ = [
    "FFC",
    "FFC_BN_ACT",
    "DeltaRefiner",
    "FFCResNetGenerator",
    "FFCResnetBlock",
    "FourierUnit",
    "InpaintingNetwork",
    "MaskControl",
    "NLayerDiscriminator",
    "SpectralTransform",
    "create_generator",
    "list_generators",
    "zero_module",
]
