"""Checks on weight files before anything is built from them: a plain pickle that is not a PyTorch file,
a training config without a usable model section, and weights holding NaN or infinity.

Each is one `LatentpaintError`; `inference/checkpoints.py` calls them where files are read and state
dicts are loaded, so every command (predict, export, visualize, serve, train --autoencoder) gets them.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from latentpaint.errors import LatentpaintError

# torch.save's pre-1.6 format starts with this number, pickled with protocol 2 (torch.serialization)
_LEGACY_MAGIC = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)[:-1]  # without the STOP opcode


def refuse_plain_pickle(path: str | Path) -> None:
    """A file that is a pickle but neither of torch's formats (zip archive, legacy magic number) is refused
    with a sentence saying so, instead of torch's advice to file an issue about weights_only."""
    path = Path(path)
    try:
        with open(path, "rb") as file:
            head = file.read(len(_LEGACY_MAGIC))
    except OSError:
        return  # the loader's own error names the problem
    if head[:1] == b"\x80" and head != _LEGACY_MAGIC and not zipfile.is_zipfile(path):
        raise LatentpaintError(
            f"{path} is a plain Python pickle, not a PyTorch checkpoint (torch.save) or safetensors file; "
            "it is not loaded"
        )


def model_section(config: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """`config["model"]` of a training checkpoint as network_from_config wants it, checked like a preset."""
    from latentpaint.training.config import validate_config

    model = config.get("model")
    keys = ("arch", "mask_mode", "delta", "overrides")
    if not isinstance(model, dict) or any(k not in model for k in keys):
        raise LatentpaintError(
            f"{path} is not a usable latentpaint checkpoint: its config has no complete model section "
            f"({', '.join(keys)})"
        )
    validate_config({"model": model}, source=f"{path}: config")
    return {k: model[k] for k in (*keys, "prefill") if k in model}  # prefill is absent in older runs


def refuse_non_finite(state: dict[str, torch.Tensor], source: str | Path) -> None:
    """Weights with NaN or infinity would inpaint solid black: refused, naming the first such tensor."""
    bad = [
        name
        for name, value in state.items()
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all()
    ]
    if bad:
        raise LatentpaintError(
            f"{source} holds weights that are NaN or infinite ({len(bad)} of {len(state)} tensors, e.g. {bad[0]}); the "
            "training that wrote it diverged or the file is damaged"
        )
