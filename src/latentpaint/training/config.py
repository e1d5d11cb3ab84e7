"""Run configuration: defaults in code, one small YAML per preset stating what differs, CLI overrides.

A preset is found by name in the package's `configs/` folder (`latent-control`) or as a path. The
resolved configuration is saved beside the checkpoints, and a resumed run reads it from there.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from latentpaint.errors import LatentpaintError
from latentpaint.models.spec import MASK_MODES
from latentpaint.training.rules import (
    Rule,
    accelerator,
    augmentation_kind,
    boolean,
    choice,
    devices,
    fid_feature,
    fraction,
    generator_arch,
    generator_overrides,
    integer,
    mask_preset,
    number,
    optional,
    output_kind,
    pair_of,
    perceptual_backbone,
    precision,
    prefill_kind,
    refiner_init_kind,
    schedule_kind,
    text,
)

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
        "prefill": "none",  # none (LaMa: zeros) | pyramid (push-pull fill) | telea (OpenCV); models/prefill.py
        "refiner_init": "default",  # default (PyTorch's) | identity (each FFC block starts as x -> x + eps)
        "output": "direct",  # direct: D(R(z)) | residual: prefill + D(R(z)) - D(z) (models/network.py)
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
        # the pixel discriminator's width (LaMa: 64). At ngf 8 an ndf-64 PatchGAN costs several times the
        # generator's step on a CPU; its cost scales with ndf squared
        "discriminator_ndf": 64,
        "feature_matching": 0.0,
        "perceptual": 0.0,
        "perceptual_backbone": "resnet50",  # or ade20k-resnet50dilated (LaMa's ResNet-PL), vgg19
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
        "augmentation": "none",  # none | distortions (LaMa's training augmentation, data/augment.py)
        "val": None,  # LaMa-layout folder scored with ssim_fid100_f1 during training (training/validation.py)
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
        # with data.val: validate every N steps (null: checkpoint_every_n_steps) and keep the best
        # save_top_k checkpoints by LaMa's val_ssim_fid100_f1_total_mean (LaMa keeps 5)
        "val_check_interval": None,
        "save_top_k": 5,
        "val_fid_feature": "fid-helper",  # FID network of validation (stand-in: tests only)
    },
}

# mappings that are one value, replaced whole by a preset or `--set` (generator keyword arguments)
LEAF_MAPPINGS = ("overrides",)
# Lightning's hardware settings: a command-line flag may change them between runs of one config
HARDWARE = ("accelerator", "devices", "num_nodes", "strategy")

CONFIG_DIR = resources.files("latentpaint") / "configs"
MAX_BASE_CHAIN = 32  # presets build on each other a few levels deep; a longer chain is a mistake


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
        if isinstance(out[key], dict) and key not in LEAF_MAPPINGS:
            if not isinstance(value, dict):
                raise LatentpaintError(f"config key {where!r} must be a mapping")
            out[key] = deep_merge(out[key], value, where + ".")
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_yaml(text: str, what: str) -> Any:
    """yaml.safe_load with one-line errors: syntax errors, and nesting too deep for the parser."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        detail = (getattr(exc, "problem", None) or " ".join(str(exc).split())) + where
        raise LatentpaintError(f"cannot parse {what} as YAML: {detail}") from None
    except RecursionError:
        raise LatentpaintError(f"cannot parse {what} as YAML: it is nested too deeply") from None


def _read_yaml(path: Path | Any) -> dict:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise LatentpaintError(f"cannot read config {path}: {exc}") from None
    data = parse_yaml(text, f"config {path}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LatentpaintError(f"config {path} must be a mapping of keys to values")
    return data


def load_preset(name_or_path: str, _chain: tuple[str, ...] = ()) -> dict:
    """The preset's YAML (following `base:` chains) merged onto the defaults."""
    if not isinstance(name_or_path, str) or not name_or_path:
        raise LatentpaintError(f"config base {name_or_path!r} must be a preset name or a YAML path")
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        source: Path | Any = path
    else:
        source = CONFIG_DIR / f"{path.stem if path.suffix else name_or_path}.yaml"
        if not source.is_file():
            raise LatentpaintError(
                f"no config {name_or_path!r}: give a YAML path or one of {', '.join(list_presets())}"
            )
    here = str(Path(str(source)).resolve()) if isinstance(source, Path) else str(source)
    if here in _chain:
        raise LatentpaintError(f"config {name_or_path} is its own base: the base: chain loops")
    if len(_chain) >= MAX_BASE_CHAIN:
        raise LatentpaintError(f"config {name_or_path}: base: chain longer than {MAX_BASE_CHAIN} files")
    data = _read_yaml(source)
    base = data.pop("base", None)
    resolved = load_preset(base, (*_chain, here)) if base else copy.deepcopy(DEFAULTS)
    return deep_merge(resolved, data)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'data.size=128' -> (['data', 'size'], 128); values are parsed as YAML."""
    if "=" not in text:
        raise LatentpaintError(f"override {text!r} must look like key.sub=value")
    key, value = text.split("=", 1)
    keys = key.strip().split(".")
    if not all(keys):
        raise LatentpaintError(f"override {text!r} must look like key.sub=value")
    return keys, parse_yaml(value, f"the value of override {key.strip()}")


def apply_overrides(config: dict, overrides: list[str]) -> dict:
    """Applies `key.sub=value` overrides, rejecting keys the configuration does not have."""
    for item in overrides:
        keys, value = parse_override(item)
        update: dict = {}
        node = update
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
        config = deep_merge(config, update)
    return config


def apply_hardware(config: dict, **flags: Any) -> dict:
    """A copy of `config` with the given `HARDWARE` flags (None: keep the config's) as trainer keys.

    Flags arrive as command-line text: a number of devices becomes an integer, '0,1' stays indices.
    """
    config = copy.deepcopy(config)
    for key, value in flags.items():
        if key not in HARDWARE:
            raise ValueError(f"{key} is not one of the hardware settings {HARDWARE}")
        if value is not None:
            config["trainer"][key] = int(value) if key == "devices" and str(value).isdigit() else value
    return config


def flatten(config: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every setting; a `LEAF_MAPPINGS` entry is one value, as for deep_merge."""
    for key, value in config.items():
        if isinstance(value, dict) and key not in LEAF_MAPPINGS:
            yield from flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def save_config(config: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


# -- validation: every value's type and range, checked before a run starts ---------------------------------
# One rule per dotted key; a key without a rule is not checked (add one beside the key's default).
RULES: dict[str, Rule] = {
    "stage": choice("inpainting", "autoencoder"),
    "seed": integer(0, 2**32 - 1),
    "model.arch": generator_arch,
    "model.overrides": generator_overrides,
    "model.mask_mode": choice(*MASK_MODES),
    "model.delta": boolean,
    "model.freeze_autoencoder": boolean,
    "model.train_first_conv": boolean,
    "model.prefill": prefill_kind,
    "model.refiner_init": refiner_init_kind,
    "model.output": output_kind,
    "autoencoder": text(optional=True),
    "loss.mode": choice("pixel", "latent", "both"),
    "loss.latent_weight": number(),
    "loss.l1_known": number(),
    "loss.l1_missing": number(),
    "loss.adversarial": number(),
    "loss.gp_coef": number(),
    "loss.mask_as_fake_target": boolean,
    "loss.feature_matching": number(),
    "loss.discriminator_ndf": integer(1, 512),
    "loss.perceptual": number(),
    "loss.perceptual_backbone": perceptual_backbone,
    "loss.perceptual_weights": text(optional=True),
    "loss.latent_adversarial": number(),
    "loss.latent_feature_matching": number(),
    "data.train": text(),
    "data.size": integer(8, 8192),
    "data.batch_size": integer(1, 4096),
    "data.num_workers": integer(0, 256),
    "data.mask_preset": mask_preset,
    "data.max_short_side": optional(integer(8, 16384)),
    "data.augmentation": augmentation_kind,
    "optim.lr": number(0.0, 10.0, above=True),
    "optim.lr_d": number(0.0, 10.0, above=True),
    "optim.betas": pair_of(fraction),
    "optim.schedule": schedule_kind,
    "optim.warmup_steps": integer(0),
    "optim.ema_decay": fraction,
    "trainer.max_steps": integer(1),
    "trainer.log_every_n_steps": integer(1),
    "trainer.checkpoint_every_n_steps": integer(1),
    "trainer.precision": precision,
    "trainer.accelerator": accelerator,
    "trainer.devices": devices,
    "trainer.num_nodes": integer(1, 10_000),
    "trainer.strategy": text(),
    "trainer.progress_bar": boolean,
    "trainer.tensorboard": boolean,
    "trainer.gradient_clip_val": optional(number(0.0, above=True)),
    "data.val": text(optional=True),
    "trainer.val_check_interval": optional(integer(1)),
    "trainer.save_top_k": integer(1, 1000),
    "trainer.val_fid_feature": fid_feature,
}


def validate_config(config: dict, source: str = "config") -> dict:
    """Checks every value that has a rule in `RULES`; the first problem is one `LatentpaintError`.

    Returns `config` unchanged, so it can wrap a resolved config: `validate_config(load_preset(...))`.
    """
    for key, rule in RULES.items():
        node: Any = config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            problem = rule(node)
            if problem:
                raise LatentpaintError(f"{source} key {key!r} must be {problem}, not {node!r}")
    return config
