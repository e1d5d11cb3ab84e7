"""latentpaint: image inpainting in the latent space of a frozen autoencoder."""

from latentpaint.errors import LatentpaintError
from latentpaint.models import InpaintingNetwork, create_generator, list_generators

__version__ = "0.1.0"


def __getattr__(name: str):
    # the inference stack pulls in more dependencies; load it only when asked for
    if name == "Inpainter":
        from latentpaint.inference.inpainter import Inpainter

        return Inpainter
    if name in ("classical_inpaint", "CLASSICAL_METHODS"):  # OpenCV and PatchMatch fills, no model
        from latentpaint.inference import classical

        return getattr(classical, name)
    raise AttributeError(name)


__all__ = [
    "CLASSICAL_METHODS",
    "Inpainter",
    "InpaintingNetwork",
    "LatentpaintError",
    "classical_inpaint",
    "create_generator",
    "list_generators",
]
