"""Running an inpainting network on uint8 arrays: pad, convert, predict, crop, quantise, keep known pixels.

It lives beside the network, below training, so training's validation predicts exactly as the `Inpainter`
(inference/inpainter.py, which adds input checks and conversions) does without importing inference.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from latentpaint.models import prefill


def pad_to_multiple(array: np.ndarray, multiple: int) -> np.ndarray:
    """Pads bottom/right by mirroring (numpy 'symmetric', as LaMa) to a multiple of `multiple`, and to at
    least 2 * `multiple` per side: a 1-px latent would leave the FFC blocks' reflect padding nothing to mirror."""
    h, w = array.shape[:2]
    target_h = max(2 * multiple, h + (-h) % multiple)
    target_w = max(2 * multiple, w + (-w) % multiple)
    # 'symmetric' mirrors at most the image's own size per call: tiny images need a few rounds
    while array.shape[0] < target_h or array.shape[1] < target_w:
        ph = min(target_h - array.shape[0], array.shape[0])
        pw = min(target_w - array.shape[1], array.shape[1])
        array = np.pad(array, [(0, ph), (0, pw)] + [(0, 0)] * (array.ndim - 2), mode="symmetric")
    return array


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (1, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div_(255)


def tensor_to_image(t: torch.Tensor, height: int | None = None, width: int | None = None) -> np.ndarray:
    """The first image of a (B, 3, H', W') batch in [0, 1], cropped to (height, width) -> uint8 (H, W, 3).

    Quantised in float32 whatever the tensor's dtype: a bf16 output (autocast) is rounded once, not twice."""
    t = t[0, :, :height, :width].float()
    return (t.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


def network_multiple(network: nn.Module) -> int:
    """The side every input must be a multiple of: one halving per downsampling layer."""
    return 2**network.generator.n_downsampling


def network_inputs(
    image: np.ndarray,
    mask: np.ndarray,
    multiple: int,
    device: str | torch.device = "cpu",
    channels_last: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (H, W, 3) image + float (H, W) mask -> padded (1, 3, H', W') and (1, 1, H', W') tensors."""
    x, m, _ = prepared_inputs(image, mask, multiple, device, channels_last)
    return x, m


def prepared_inputs(
    image: np.ndarray,
    mask: np.ndarray,
    multiple: int,
    device: str | torch.device = "cpu",
    channels_last: bool = False,
    host_prefill: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """`network_inputs` plus the host prefill `host_prefill` (models/prefill.py) of the padded uint8
    image, computed here before the upload so the device never waits for the host: (x, m, prefilled)."""
    padded, padded_mask = pad_to_multiple(image, multiple), pad_to_multiple(mask, multiple)
    tensors = [image_to_tensor(padded), torch.from_numpy(padded_mask)[None, None]]
    if host_prefill is not None:
        tensors.append(image_to_tensor(prefill.host_prefill(host_prefill, padded, padded_mask)))
    # pinned host memory lets the copies run asynchronously to a CUDA device
    pin = torch.device(device).type == "cuda" and torch.cuda.is_available()
    moved = [(t.pin_memory() if pin else t).to(device, non_blocking=pin) for t in tensors]
    if channels_last:  # a channels-last network (inference/optimize.py): convert the inputs once, here
        moved = [t.contiguous(memory_format=torch.channels_last) for t in moved]
    return moved[0], moved[1], moved[2] if host_prefill is not None else None


def _device_of(network: nn.Module) -> torch.device:
    parameter = next(network.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def host_prefill_of(network: nn.Module) -> str | None:
    """The host prefill `network` expects as `prefilled` (InpaintingNetwork.host_prefill), or None."""
    kind = getattr(network, "prefill", None)
    return kind if kind in prefill.HOST_PREFILLS else None


@torch.inference_mode()
def inpaint_uint8(
    network: nn.Module,
    image: np.ndarray,
    mask: np.ndarray,
    device: str | torch.device | None = None,
    channels_last: bool = False,
    dtype: torch.dtype | None = None,
) -> np.ndarray:
    """uint8 (H, W, 3) image + float (H, W) mask of the same size -> inpainted uint8 (H, W, 3).

    Runs `network` as it is (the caller sets eval mode) on `device` (default: the network's), and keeps
    every pixel where the mask is 0 exactly the input's. A host prefill (Telea) is computed on the uint8
    image before the upload and passed in. `dtype` (torch.bfloat16 / float16): the forward pass runs
    under autocast in that precision; the FFTs stay float32 (models/ffc.py).
    """
    if not mask.any():
        return image.copy()
    device = torch.device(_device_of(network) if device is None else device)
    kind = host_prefill_of(network)
    x, m, prefilled = prepared_inputs(image, mask, network_multiple(network), device, channels_last, kind)
    with torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext():
        out = network(x, m) if prefilled is None else network(x, m, prefilled=prefilled)
    pred = tensor_to_image(out, *image.shape[:2])
    return np.where(mask[..., None] > 0, pred, image)
