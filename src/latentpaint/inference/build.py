"""From a model description (release config.json, a run's model section, a LaMa folder) to a network.

The description itself is `models.network.ModelSpec` (`from_dict` checks it, `build` makes the network);
this module adds what loading weights needs on top.

Each description is checked (types, ranges, parameter count, agreement with the weight file's shapes) on
the meta device before any tensor is allocated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from latentpaint.errors import LatentpaintError
from latentpaint.storage.state import check_state_shapes
from latentpaint.storage.torchfile import error_reason


def check_model_config(config: Any, source: str | Path = "model config") -> dict:
    """The constructor arguments of an `InpaintingNetwork` from a release/run config, checked
    (`ModelSpec.from_dict`: types and sane ranges, without allocating anything)."""
    from latentpaint.models.network import ModelSpec

    return ModelSpec.from_dict(config, source).to_dict()


def plan_network(config: Any, source: str | Path = "model config"):
    """The network a config describes (`ModelSpec.from_dict`), built on the meta device (no memory):
    checks it and its size.

    Returns the meta-device network, whose `state_dict()` has every key and shape a weight file must have.
    """
    from latentpaint.models.limits import MAX_PARAMETERS
    from latentpaint.models.network import ModelSpec

    spec = ModelSpec.from_dict(config, source)
    try:
        with torch.device("meta"):
            network = spec.build()
    except (TypeError, ValueError, RuntimeError) as exc:
        raise LatentpaintError(f"{source}: invalid model config: {error_reason(exc)}") from None
    count = sum(t.numel() for t in network.state_dict().values())
    if count > MAX_PARAMETERS:
        raise LatentpaintError(
            f"{source}: the model config describes {count:,} parameters, more than the supported "
            f"{MAX_PARAMETERS:,} (big-lama has 51 M)"
        )
    return network


def network_from_config(
    config: dict, state_shapes: dict[str, tuple | None] | None = None, source: str | Path = "model config"
):
    """An untrained `InpaintingNetwork` with the architecture a release/run config describes.

    The config is checked first (`plan_network`), and with `state_shapes` (key -> shape of the weights
    that will be loaded) its agreement with the weight file, all before any tensor is allocated.
    """
    planned = plan_network(config, source)
    if state_shapes is not None:
        check_state_shapes(planned, state_shapes, source)
    return planned.spec.build()
