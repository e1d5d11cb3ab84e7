"""Run configuration: defaults in code, one small YAML per preset stating what differs, CLI overrides.

A preset is found by name in the package's `configs/` folder (`latent-control`) or as a path. The
resolved configuration is saved beside the checkpoints, and a resumed run reads it from there.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from latentpaint.errors import LatentpaintError

DEFAULTS: dict[str, Any] = {
    "stage": "inpainting",  # or "autoencoder"
    "seed": 0,
    "model": {
        "arch": "thesis",
        "overrides": {},  # generator keyword overrides, e.g. {ngf: 16}
        "mask_mode": "alpha",  # alpha | control
        "delta": False,
        "freeze_autoencoder": False,  # keep stage-1 encoder/decoder fixed (weights and BN statistics)
        "train_first_conv": False,  # with a frozen encoder: still train the stem (it sees the mask channel)
        "prefill": "none",  # none (LaMa: zeros in the hole) | pyramid (smooth push-pull fill, models/prefill.py)
        "refiner_init": "default",  # default (PyTorch's) | identity (each FFC block starts as x -> x + eps)
    },
    "autoencoder": None,  # stage-1 checkpoint that initialises the encoder/decoder (stage 2)
    "loss": {
        "mode": "pixel",  # pixel | latent | both
        "latent_weight": 1.0,
        "l1_known": 1.0,
        "l1_missing": 1.0,
        "adversarial": 0.0,
        "gp_coef": 0.001,
        "mask_as_fake_target": True,
        "feature_matching": 0.0,
        "perceptual": 0.0,
        "perceptual_backbone": "resnet50",
        "perceptual_weights": None,
        # the thesis' future work: a discriminator on latent features, so adversarial training never decodes
        "latent_adversarial": 0.0,
        "latent_feature_matching": 0.0,
    },
    "data": {
        "train": "builtin",
        "size": 256,
        "batch_size": 8,
        "num_workers": 2,
        "mask_preset": "wide",
        # photos are resized so their short side is in [size, max_short_side] (null: 2 * size); a larger
        # value makes a crop show part of a scene at the scale evaluation sees, not a shrunken whole photo
        "max_short_side": None,
    },
    "optim": {
        "lr": 1.0e-3,
        "lr_d": 1.0e-4,
        "betas": [0.9, 0.999],
        "schedule": "constant",  # constant | cosine (to zero at trainer.max_steps), after linear warm-up
        "warmup_steps": 0,
        "ema_decay": 0.0,  # > 0: checkpoints hold an exponential moving average of the weights (Lightning EMA)
    },
    "trainer": {
        "max_steps": 1000,
        "log_every_n_steps": 10,
        "checkpoint_every_n_steps": 250,
        "precision": "32-true",
        "gradient_clip_val": None,  # clip the generator's (and discriminators') gradient norm, as LaMa (1.0)
        "accelerator": "auto",
        "devices": 1,
        "num_nodes": 1,
        "strategy": "auto",
        "progress_bar": True,
        "tensorboard": False,  # also log to TensorBoard (needs the tensorboard package)
    },
}

CONFIG_DIR = resources.files("latentpaint") / "configs"


def list_presets() -> list[str]:
    """Names of the YAML presets shipped with the package."""
    return sorted(p.name[: -len(".yaml")] for p in CONFIG_DIR.iterdir() if p.name.endswith(".yaml"))


def deep_merge(base: dict, update: dict, path: str = "") -> dict:
    """A copy of `base` with `update` applied; unknown keys are an error so typos never pass silently."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        where = f"{path}{key}"
        if key not in out:
            raise LatentpaintError(f"unknown config key {where!r}")
        if isinstance(out[key], dict) and key != "overrides":
            if not isinstance(value, dict):
                raise LatentpaintError(f"config key {where!r} must be a mapping")
            out[key] = deep_merge(out[key], value, where + ".")
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path | Any) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise LatentpaintError(f"cannot read config {path}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LatentpaintError(f"config {path} must be a mapping of keys to values")
    return data


def load_preset(name_or_path: str) -> dict:
    """The preset's YAML (following `base:` chains) merged onto the defaults."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        source: Path | Any = path
    else:
        source = CONFIG_DIR / f"{path.stem if path.suffix else name_or_path}.yaml"
        if not source.is_file():
            raise LatentpaintError(
                f"no config {name_or_path!r}: give a YAML path or one of {', '.join(list_presets())}"
            )
    data = _read_yaml(source)
    base = data.pop("base", None)
    resolved = load_preset(base) if base else copy.deepcopy(DEFAULTS)
    return deep_merge(resolved, data)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'data.size=128' -> (['data', 'size'], 128); values are parsed as YAML."""
    if "=" not in text:
        raise LatentpaintError(f"override {text!r} must look like key.sub=value")
    key, value = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(value)


def apply_overrides(config: dict, overrides: list[str]) -> dict:
    """Applies `key.sub=value` overrides, rejecting keys the configuration does not have."""
    for text in overrides:
        keys, value = parse_override(text)
        update: dict = {}
        node = update
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
        config = deep_merge(config, update)
    return config


def save_config(config: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
