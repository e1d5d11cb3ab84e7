"""From a model description (release config.json, a run's model section, a LaMa folder) to a network.

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
    """The constructor arguments of an `InpaintingNetwork` from a release/run config, checked.

    Types and sane ranges (`models.limits`) are checked without allocating anything.
    """
    from latentpaint.models.limits import check_generator_args
    from latentpaint.models.network import PREFILLS
    from latentpaint.models.registry import list_generators

    if not isinstance(config, dict):
        raise LatentpaintError(f"{source}: the model config is not a mapping")
    arch, mask_mode = config.get("arch"), config.get("mask_mode")
    if arch not in list_generators():
        raise LatentpaintError(
            f"{source}: unknown generator arch {str(arch)[:40]!r}; choose one of {', '.join(list_generators())}"
        )
    if mask_mode not in ("alpha", "control"):
        raise LatentpaintError(
            f"{source}: mask_mode must be 'alpha' or 'control', not {str(mask_mode)[:40]!r}"
        )
    delta = config.get("delta", False)
    if not isinstance(delta, bool):
        raise LatentpaintError(f"{source}: delta must be true or false")
    overrides = config.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise LatentpaintError(f"{source}: overrides must be a mapping of generator arguments")
    check_generator_args(overrides, source)
    prefill = config.get("prefill", "none")  # absent in configs written before the option: LaMa's zeros
    if prefill not in PREFILLS:
        raise LatentpaintError(
            f"{source}: prefill must be one of {', '.join(PREFILLS)}, not {str(prefill)[:40]!r}"
        )
    return {"arch": arch, "mask_mode": mask_mode, "delta": delta, "prefill": prefill, "overrides": overrides}


def plan_network(config: Any, source: str | Path = "model config"):
    """The network a config describes, built on the meta device (no memory): checks it and its size.

    Returns the meta-device network, whose `state_dict()` has every key and shape a weight file must have.
    """
    from latentpaint.models.limits import MAX_PARAMETERS
    from latentpaint.models.network import InpaintingNetwork

    args = check_model_config(config, source)
    try:
        with torch.device("meta"):
            network = InpaintingNetwork(
                args["arch"], args["mask_mode"], args["delta"], args["prefill"], **args["overrides"]
            )
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
    from latentpaint.models.network import InpaintingNetwork

    planned = plan_network(config, source)
    if state_shapes is not None:
        check_state_shapes(planned, state_shapes, source)
    args = check_model_config(config, source)
    return InpaintingNetwork(
        args["arch"], args["mask_mode"], args["delta"], args["prefill"], **args["overrides"]
    )
