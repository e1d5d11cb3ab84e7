"""The one place that reads and writes weights.

Nothing here ever unpickles arbitrary objects: torch files are read with `weights_only=True` and
released weights are safetensors, so opening a checkpoint cannot run code from it.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from latentpaint.errors import LatentpaintError
from latentpaint.files import atomic_write
from latentpaint.inference.safety import model_section, refuse_non_finite, refuse_plain_pickle


def error_reason(exc: BaseException) -> str:
    """The line of an exception's message that says what went wrong, for a one-line error.

    torch's weights_only errors open with advice to retry with weights_only=False, which a user must not
    follow for an untrusted file: that line is skipped.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Weights only load failed", "Check the doc"))]
    if not useful or isinstance(exc, LookupError):  # a bare key or index says nothing on its own
        return ": ".join([type(exc).__name__, *useful[:1]])
    return useful[0]


def load_torch_file(path: str | Path) -> dict[str, Any]:
    """torch.load with weights_only=True and one-line errors for missing, truncated or unsafe files."""
    path = Path(path)
    if not path.is_file():
        raise LatentpaintError(f"checkpoint {path} does not exist")
    refuse_plain_pickle(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if unsafe:
            raise LatentpaintError(
                f"refusing to load {path}: it references {unsafe[1]}, which is neither a tensor nor a plain "
                "container and could run code when unpickled"
            ) from None
        raise LatentpaintError(f"cannot read checkpoint {path}: {error_reason(exc)}") from None
    except Exception as exc:  # a damaged file fails anywhere in torch's reader: RuntimeError, KeyError, ...
        raise damaged_checkpoint(path, exc) from None
    return ensure_dict(data, path)


def damaged_checkpoint(path: Path, exc: Exception) -> LatentpaintError:
    """The one-line error for a file torch's reader chokes on."""
    return LatentpaintError(
        f"cannot read checkpoint {path} (truncated or not a PyTorch file): {error_reason(exc)}"
    )


def ensure_dict(data: Any, path: Path) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise LatentpaintError(f"checkpoint {path} does not hold a dictionary of weights")
    return data


def read_training_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(run config, Lightning state dict) from a latentpaint training checkpoint."""
    ckpt = load_torch_file(path)
    config = (ckpt.get("hyper_parameters") or {}).get("config")
    if not isinstance(config, dict) or "state_dict" not in ckpt:
        raise LatentpaintError(
            f"{path} is not a latentpaint training checkpoint (no config or state_dict in it)"
        )
    return config, ckpt["state_dict"]


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under `prefix`, with it removed (e.g. 'generator.' of a LaMa checkpoint)."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


# -- release folders: config.json + model.safetensors (diffusers-style) ---------------------------------
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def network_from_config(config: dict):
    """An untrained `InpaintingNetwork` with the architecture a release/run config describes."""
    from latentpaint.models.network import InpaintingNetwork

    try:
        return InpaintingNetwork(
            config["arch"],
            config["mask_mode"],
            bool(config.get("delta", False)),
            **config.get("overrides", {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LatentpaintError(f"invalid model config {config}: {exc}") from None


def load_state_strict(network, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """load_state_dict(strict=True) with one sentence when the architectures differ."""
    result = network.state_dict()
    missing = sorted(set(result) - set(state))
    unexpected = sorted(set(state) - set(result))
    wrong = sorted(k for k in set(result) & set(state) if tuple(result[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} of another shape (e.g. {k}: {tuple(state[k].shape)} vs {tuple(result[k].shape)})"
            )
        raise LatentpaintError(f"{source} holds weights of another architecture: {'; '.join(parts)} keys")
    refuse_non_finite(state, source)
    network.load_state_dict(state, strict=True)


def release_config(network, **extra) -> dict:
    """What `config.json` records: the network's constructor arguments plus provenance (preset, ...)."""
    config = dict(network.config)
    overrides = {k: v for k, v in config.items() if k not in ("arch", "mask_mode", "delta")}
    return {
        "arch": config["arch"],
        "mask_mode": config["mask_mode"],
        "delta": config["delta"],
        "overrides": overrides,
        **extra,
    }


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
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        config = json.loads((folder / CONFIG_NAME).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise LatentpaintError(f"cannot read {folder / CONFIG_NAME}: {exc}") from None
    try:
        state = load_file(str(folder / WEIGHTS_NAME))
    except (OSError, SafetensorError) as exc:
        raise LatentpaintError(
            f"cannot read {folder / WEIGHTS_NAME} (truncated or not safetensors): {exc}"
        ) from None
    network = network_from_config(config)
    load_state_strict(network, state, folder / WEIGHTS_NAME)
    return network


def load_training_network(path: str | Path):
    """The `InpaintingNetwork` of a stage-2 training checkpoint."""
    return training_network(*read_training_checkpoint(path), path)


def training_network(config: dict[str, Any], state: dict[str, torch.Tensor], path: str | Path):
    """The `InpaintingNetwork` of an already read stage-2 checkpoint (`read_training_checkpoint`)."""
    if config.get("stage") != "inpainting":
        raise LatentpaintError(
            f"{path} is not a stage-2 (inpainting) checkpoint (its config says stage: {config.get('stage')})"
        )
    m = model_section(config, path)
    network = network_from_config(
        {"arch": m["arch"], "mask_mode": m["mask_mode"], "delta": m["delta"], "overrides": m["overrides"]}
    )
    load_state_strict(network, strip_prefix(state, "network."), path)
    return network


def load_network(path: str | Path):
    """Any supported model: a release folder, a training checkpoint (.ckpt) or an official LaMa folder."""
    path = Path(path)
    if path.is_dir():
        if (path / WEIGHTS_NAME).is_file():
            return load_release(path)
        if (path / "models" / "best.ckpt").is_file() or (path / "config.yaml").is_file():
            from latentpaint.inference.lama import load_lama_folder

            return load_lama_folder(path)
        raise LatentpaintError(
            f"{path} holds no model: expected {WEIGHTS_NAME} + {CONFIG_NAME} (latentpaint release) "
            "or config.yaml + models/best.ckpt (official LaMa)"
        )
    if path.is_file():
        from latentpaint.inference.lama import raise_if_torchscript

        raise_if_torchscript(path)
        return load_training_network(path)
    raise LatentpaintError(f"model {path} does not exist")
