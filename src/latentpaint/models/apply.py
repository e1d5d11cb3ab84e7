"""Running an inpainting network on uint8 arrays: pad, convert, predict, crop, quantise, keep known pixels.

It lives beside the network, below training, so training's validation predicts exactly as the `Inpainter`
(inference/inpainter.py, which adds input checks and conversions) does without importing inference.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


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
    """The first image of a (B, 3, H', W') batch in [0, 1], cropped to (height, width) -> uint8 (H, W, 3)."""
    return (t[0, :, :height, :width].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


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
    x = image_to_tensor(pad_to_multiple(image, multiple)).to(device)
    m = torch.from_numpy(pad_to_multiple(mask, multiple))[None, None].to(device)
    if channels_last:  # a channels-last network (inference/optimize.py): convert the inputs once, here
        x, m = (
            x.contiguous(memory_format=torch.channels_last),
            m.contiguous(memory_format=torch.channels_last),
        )
    return x, m


def _device_of(network: nn.Module) -> torch.device:
    parameter = next(network.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@torch.inference_mode()
def inpaint_uint8(
    network: nn.Module,
    image: np.ndarray,
    mask: np.ndarray,
    device: str | torch.device | None = None,
    channels_last: bool = False,
) -> np.ndarray:
    """uint8 (H, W, 3) image + float (H, W) mask of the same size -> inpainted uint8 (H, W, 3).

    Runs `network` as it is (the caller sets eval mode) on `device` (default: the network's), and keeps
    every pixel where the mask is 0 exactly the input's.
    """
    if not mask.any():
        return image.copy()
    device = _device_of(network) if device is None else device
    x, m = network_inputs(image, mask, network_multiple(network), device, channels_last)
    pred = tensor_to_image(network(x, m), *image.shape[:2])
    return np.where(mask[..., None] > 0, pred, image)
