"""`Inpainter`: the user-facing Python API. Pads, predicts, crops back, and keeps known pixels exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from latentpaint.data.images import check_same_size, fill_mask, is_lossy, mask_levels, rgb_array
from latentpaint.devices import as_device
from latentpaint.errors import LatentpaintError
from latentpaint.models.apply import (  # noqa: F401 - they moved there; importable from here as before
    host_prefill_of,
    image_to_tensor,
    inpaint_uint8,
    network_inputs,
    network_multiple,
    pad_to_multiple,
    prepared_inputs,
    tensor_to_image,
)
from latentpaint.models.damage import latent_damage
from latentpaint.models.network import InpaintingNetwork


def to_rgb_array(image) -> np.ndarray:
    """PIL image or uint8 array (H, W[, C]) -> uint8 (H, W, 3)."""
    if isinstance(image, Image.Image):
        return rgb_array(image)  # the file reader's conversion: 16-bit keeps its range, alpha dropped
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise LatentpaintError(f"images must be uint8 arrays or PIL images, got dtype {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise LatentpaintError(f"image must be (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    return np.ascontiguousarray(array[..., :3])


def to_mask_array(mask) -> np.ndarray:
    """PIL image or array -> float32 (H, W), 1 where the mask reader's rule (data.images.fill_mask) fills."""
    if isinstance(mask, Image.Image):
        return fill_mask(mask_levels(mask), is_lossy(mask)).astype(np.float32)
    return fill_mask(mask).astype(np.float32)


DTYPES = {"fp32": None, "float32": None, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
          "fp16": torch.float16, "float16": torch.float16}  # fmt: skip


def autocast_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """The autocast dtype of `Inpainter(dtype=...)`: None for fp32 (no autocast), bf16 or fp16."""
    if dtype is None or dtype == torch.float32:
        return None
    if isinstance(dtype, torch.dtype) and dtype in (torch.bfloat16, torch.float16):
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise LatentpaintError(f"unknown inference dtype {dtype!r}: choose fp32, bf16 or fp16")


class Inpainter:
    """Fills masked regions of images with an `InpaintingNetwork`.

    Accepts PIL images or uint8 arrays of any size; returns the same kind, same size, with every pixel
    outside the mask exactly the input's.

    `device="auto"` is CUDA when present, else the CPU. `dtype="bf16"` (or `"fp16"`) runs the network
    under autocast in that precision (the FFTs stay float32; fp32 is the default and what every published
    CPU number used). `compile=True` wraps the network in `torch.compile(dynamic=False)`: the first call
    at each padded input size compiles (tens of seconds), later calls at that size are faster.
    """

    def __init__(
        self,
        network: InpaintingNetwork,
        device: str | torch.device = "auto",
        optimize: bool = False,
        dtype: str | torch.dtype | None = "fp32",
        compile: bool = False,
    ):
        self.device = as_device(device)
        self.dtype = autocast_dtype(dtype)
        self.network = network.eval().to(self.device)
        self.optimized = optimize
        if optimize:
            from latentpaint.inference.optimize import optimize_for_inference

            self.network = optimize_for_inference(self.network)
        if compile:
            self.network = torch.compile(self.network, dynamic=False)
        self.compiled = compile
        self.multiple = network_multiple(network)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: str | torch.device = "auto",
        optimize: bool = False,
        dtype: str | torch.dtype | None = "fp32",
        compile: bool = False,
    ) -> Inpainter:
        """Loads a release folder, a training checkpoint or an official LaMa folder."""
        from latentpaint.inference.checkpoints import load_network

        return cls(load_network(path), device=device, optimize=optimize, dtype=dtype, compile=compile)

    def _tensors(self, image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        check_same_size(image, mask)
        return network_inputs(image, mask, self.multiple, self.device, channels_last=self.optimized)

    def predict_array(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """uint8 (H, W[, 3|4]) image + (H, W) mask -> inpainted uint8 (H, W, 3). The mask may be uint8
        (0/255 or 0/1), bool or float: every level above 0 fills, as in `__call__`; both are checked."""
        image, mask = to_rgb_array(image), to_mask_array(mask)
        check_same_size(image, mask)
        return inpaint_uint8(
            self.network, image, mask, self.device, channels_last=self.optimized, dtype=self.dtype
        )

    def __call__(self, image, mask):
        """Inpaints `image` where `mask` > 0; PIL in -> PIL out, array in -> array out."""
        result = self.predict_array(image, mask)
        return Image.fromarray(result) if isinstance(image, Image.Image) else result

    @torch.inference_mode()
    def latent_damage(self, image, mask) -> np.ndarray:
        """D(E(gt) - E(masked)) as a uint8 picture of the input size (the thesis' damage map)."""
        image, mask = to_rgb_array(image), to_mask_array(mask)
        check_same_size(image, mask)
        x, m, prefilled = prepared_inputs(
            image, mask, self.multiple, self.device, self.optimized, host_prefill_of(self.network)
        )
        return tensor_to_image(latent_damage(self.network, x, m, prefilled), *image.shape[:2])
