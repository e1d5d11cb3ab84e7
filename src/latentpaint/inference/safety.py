"""Checks on weight files before anything is built from them: a plain pickle that is not a PyTorch file,
a training config without a usable model section, and weights holding NaN or infinity.

Each is one `LatentpaintError`; `inference/checkpoints.py` calls them where files are read and state
dicts are loaded, so every command (predict, export, visualize, serve, train --autoencoder) gets them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from latentpaint.errors import LatentpaintError, quoted

# the file checks live in storage/, low enough for every loader; their names stay importable here
from latentpaint.storage.state import refuse_non_finite  # noqa: F401
from latentpaint.storage.torchfile import refuse_plain_pickle  # noqa: F401


def model_section(config: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """`config["model"]` of a training checkpoint as network_from_config wants it (the network's spec),
    checked like a preset; keys older runs lack (prefill, output) take their defaults."""
    from latentpaint.training.config import RunConfig

    model = config.get("model")
    keys = ("arch", "mask_mode", "delta", "overrides")
    if not isinstance(model, dict) or any(k not in model for k in keys):
        raise LatentpaintError(
            f"{quoted(path)} is not a usable latentpaint checkpoint: its config has no complete model section "
            f"({', '.join(keys)})"
        )
    return RunConfig.read({"model": model}, source=f"{quoted(path)}: config").model.spec.to_dict()
