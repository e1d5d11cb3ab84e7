"""Models in and out: release folders (config.json + model.safetensors), training checkpoints, and
`load_network` for every format latentpaint reads.

Nothing here ever unpickles arbitrary objects: torch files are read through storage/ (`weights_only=True`)
and released weights are safetensors, so opening a checkpoint cannot run code from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from latentpaint.errors import LatentpaintError, quoted
from latentpaint.files import atomic_write
from latentpaint.inference.build import check_model_config, network_from_config, plan_network  # noqa: F401
from latentpaint.inference.safety import model_section
from latentpaint.storage.state import (  # noqa: F401  (imported from here by older code)
    check_state_shapes,
    load_state_strict,
    refuse_non_finite,
    shapes_of,
    strip_prefix,
)
from latentpaint.storage.torchfile import (  # noqa: F401  (imported from here by older code)
    MAX_CONFIG_BYTES,
    damaged_checkpoint,
    ensure_dict,
    error_reason,
    load_torch_file,
    read_config_text,
    read_training_checkpoint,
    refuse_plain_pickle,
)

# -- release folders: config.json + model.safetensors (diffusers-style) ---------------------------------
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def read_release_config(path: Path) -> dict:
    """config.json of a release folder, refusing huge or absurdly nested files with one line."""
    text = read_config_text(path)
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LatentpaintError(f"cannot read {quoted(path)}: {exc}") from None
    except RecursionError:
        raise LatentpaintError(
            f"cannot read {quoted(path)}: it is nested too deeply to be a model config"
        ) from None
    if not isinstance(config, dict):
        raise LatentpaintError(f"{quoted(path)} does not hold a JSON object")
    return config


def release_config(network, **extra) -> dict:
    """What `config.json` records: the network's spec (`ModelSpec.to_dict`) plus provenance (preset, ...)."""
    return {**network.spec.to_dict(), **extra}


def save_release(network, out_dir: str | Path, **extra) -> Path:
    """Writes `config.json` + `model.safetensors` into `out_dir` (atomically, file by file)."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    atomic_write(out_dir / WEIGHTS_NAME, lambda p: save_file(state, str(p), metadata={"format": "pt"}))
    text = json.dumps(release_config(network, **extra), indent=2)
    atomic_write(out_dir / CONFIG_NAME, lambda p: p.write_text(text))
    return out_dir


def load_release(folder: str | Path):
    """An `InpaintingNetwork` from a release folder written by `save_release`."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    folder = Path(folder)
    config = read_release_config(folder / CONFIG_NAME)
    weights = folder / WEIGHTS_NAME
    try:  # the header only: keys and shapes, nothing allocated yet
        with safe_open(str(weights), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        check_state_shapes(plan_network(config, folder / CONFIG_NAME), shapes, weights)
        network = network_from_config(config, source=folder / CONFIG_NAME)
        state = load_file(str(weights))
    except (OSError, SafetensorError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise LatentpaintError(
            f"cannot read {quoted(weights)} (truncated or not safetensors): {reason}"
        ) from None
    load_state_strict(network, state, weights)
    return network


def load_training_network(path: str | Path):
    """The `InpaintingNetwork` of a stage-2 training checkpoint."""
    return training_network(*read_training_checkpoint(path), path)


def training_network(config: dict[str, Any], state: dict[str, torch.Tensor], path: str | Path):
    """The `InpaintingNetwork` of an already read stage-2 checkpoint (`read_training_checkpoint`)."""
    if config.get("stage") != "inpainting":
        raise LatentpaintError(
            f"{quoted(path)} is not a stage-2 (inpainting) checkpoint (its config says stage: {config.get('stage')})"
        )
    m = model_section(config, path)
    weights = strip_prefix(state, "network.")
    network = network_from_config(m, shapes_of(weights), path)
    load_state_strict(network, weights, path)
    return network


def load_network(path: str | Path):
    """Any supported model: a release folder, a training checkpoint (.ckpt), an official LaMa folder, a
    single LaMa weight file (a Lightning `.ckpt` with `generator.*` weights or a bare generator state dict),
    or the name of a model shipped with the package ("default")."""
    from latentpaint.inference.pretrained import resolve_model

    path = resolve_model(path)
    if path.is_dir():
        if (path / WEIGHTS_NAME).is_file():
            return load_release(path)
        if (path / "models" / "best.ckpt").is_file() or (path / "config.yaml").is_file():
            from latentpaint.inference.lama import load_lama_folder

            return load_lama_folder(path)
        raise LatentpaintError(
            f"{quoted(path)} holds no model: expected {WEIGHTS_NAME} + {CONFIG_NAME} (latentpaint release) "
            "or config.yaml + models/best.ckpt (official LaMa)"
        )
    if path.is_file():
        from latentpaint.inference.lama import load_lama_weights
        from latentpaint.storage.pickled import read_lightning_checkpoint

        refuse_plain_pickle(path)
        ckpt, _ = read_lightning_checkpoint(path)  # refuses TorchScript; OmegaConf objects become inert
        hyper_parameters = ckpt.get("hyper_parameters")
        config = hyper_parameters.get("config") if isinstance(hyper_parameters, dict) else None
        if isinstance(config, dict) and "state_dict" in ckpt:
            return training_network(config, ckpt["state_dict"], path)
        return load_lama_weights(ckpt, path)  # a single LaMa weight file (IOPaint-style)
    from latentpaint.files import path_kind

    kind = path_kind(path)
    if kind is None:
        raise LatentpaintError(f"model {quoted(path)} does not exist")
    raise LatentpaintError(
        f"model {quoted(path)} is {kind}; expected a release folder, a training checkpoint (.ckpt), an official "
        "LaMa folder or a LaMa weight file"
    )
