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


MAX_CONFIG_BYTES = 1_000_000  # a release config.json or LaMa config.yaml is a few kB


def read_config_text(path: Path) -> str:
    """A small config file's text; a huge one is refused before it is read."""
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise LatentpaintError(
                f"{path} is {size:,} bytes; a model config is at most {MAX_CONFIG_BYTES:,} (is it the right file?)"
            )
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LatentpaintError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise LatentpaintError(f"{path} is not a UTF-8 text file") from None


def read_release_config(path: Path) -> dict:
    """config.json of a release folder, refusing huge or absurdly nested files with one line."""
    text = read_config_text(path)
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LatentpaintError(f"cannot read {path}: {exc}") from None
    except RecursionError:
        raise LatentpaintError(f"cannot read {path}: it is nested too deeply to be a model config") from None
    if not isinstance(config, dict):
        raise LatentpaintError(f"{path} does not hold a JSON object")
    return config


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


def shapes_of(state: dict[str, Any]) -> dict[str, tuple | None]:
    """key -> shape of a state dict (None for an entry that is not a tensor)."""
    return {k: tuple(v.shape) if isinstance(v, torch.Tensor) else None for k, v in state.items()}


def check_state_shapes(network, found: dict[str, tuple | None], source: str | Path) -> None:
    """One sentence when `found` (key -> shape) is not exactly the keys and shapes of `network`'s state."""
    expected = shapes_of(network.state_dict())
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0][:80]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} of another shape (e.g. {k}: {found[k]} vs {expected[k]})")
        raise LatentpaintError(f"{source} holds weights of another architecture: {'; '.join(parts)} keys")


def load_state_strict(network, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """load_state_dict(strict=True) with one sentence when the architectures differ."""
    check_state_shapes(network, shapes_of(state), source)
    refuse_non_finite(state, source)
    network.load_state_dict(state, strict=True)


def release_config(network, **extra) -> dict:
    """What `config.json` records: the network's constructor arguments plus provenance (preset, ...)."""
    config = dict(network.config)
    overrides = {k: v for k, v in config.items() if k not in ("arch", "mask_mode", "delta", "prefill")}
    return {
        "arch": config["arch"],
        "mask_mode": config["mask_mode"],
        "delta": config["delta"],
        "prefill": config.get("prefill", "none"),
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
        raise LatentpaintError(f"cannot read {weights} (truncated or not safetensors): {exc}") from None
    load_state_strict(network, state, weights)
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
    weights = strip_prefix(state, "network.")
    network = network_from_config(
        {k: m[k] for k in ("arch", "mask_mode", "delta", "prefill", "overrides") if k in m},
        shapes_of(weights),
        path,
    )
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
            f"{path} holds no model: expected {WEIGHTS_NAME} + {CONFIG_NAME} (latentpaint release) "
            "or config.yaml + models/best.ckpt (official LaMa)"
        )
    if path.is_file():
        from latentpaint.inference.lama import load_lama_weights, read_lightning_checkpoint

        refuse_plain_pickle(path)
        ckpt, _ = read_lightning_checkpoint(path)  # refuses TorchScript; OmegaConf objects become inert
        hyper_parameters = ckpt.get("hyper_parameters")
        config = hyper_parameters.get("config") if isinstance(hyper_parameters, dict) else None
        if isinstance(config, dict) and "state_dict" in ckpt:
            return training_network(config, ckpt["state_dict"], path)
        return load_lama_weights(ckpt, path)  # a single LaMa weight file (IOPaint-style)
    raise LatentpaintError(f"model {path} does not exist")
