"""The run configuration: every key declared once, with its type, default, range and a short description.

A run's config is read once, where a command starts (training/presets.py: a preset, `--set`, flags; or
`RunConfig.read` of a saved one), into a frozen `RunConfig` (pydantic) that every part receives: code says
`cfg.loss.latent_weight`. Choices that belong to another module (generator archs, prefills, mask presets,
FID networks, ...) are asked from that module, so a new prefill is one edit in models/. Unknown keys are
errors, and so is any wrong value: one line naming the key, the value and what is allowed.

The plain dict (`to_dict`) is what config.yaml and checkpoints hold; a config written by an earlier
version reads with today's defaults for the keys it lacks. `latentpaint config --schema` prints the schema.
The value types a key may hold (ranges, choices, precisions, devices) are in training/value_types.py.
"""

from __future__ import annotations

import functools
import reprlib
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from latentpaint.data.augment import AUGMENTATIONS
from latentpaint.errors import LatentpaintError
from latentpaint.losses.perceptual import PERCEPTUAL_BACKBONES
from latentpaint.masks import list_mask_presets
from latentpaint.metrics.fid import FID_FEATURES
from latentpaint.models.attention import ATTENTIONS
from latentpaint.models.network import MASK_MODES, OUTPUTS, PREFILLS, ModelSpec
from latentpaint.models.refiner_init import REFINER_INITS
from latentpaint.models.registry import list_generators
from latentpaint.training.optim import SCHEDULES, OptimiserSettings
from latentpaint.training.value_types import (
    Devices,
    Fraction,
    GeneratorArgs,
    Positive,
    Precision,
    Rate,
    Text,
    Weight,
    Workers,
    accelerators,
    choice,
    count,
    key,
    rule,
)


# -- the keys ------------------------------------------------------------------------------------------
class Section(BaseModel):
    """A group of keys: frozen, strict types (YAML has typed the values already), unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ModelConfig(Section):
    """The network (`spec`) and which of its parts stage 2 trains."""

    arch: choice(list_generators) = key("thesis", "generator preset (models/registry.py)")
    overrides: GeneratorArgs = key({}, "generator keyword arguments, e.g. {ngf: 16}; replaced whole")
    mask_mode: choice(MASK_MODES) = key("alpha", "alpha: a 4th input channel; control: mask control")
    delta: bool = key(False, "the refiner predicts a change added to its input features")
    freeze_autoencoder: bool = key(False, "keep the stage-1 encoder/decoder fixed (weights, BN statistics)")
    train_first_conv: bool = key(False, "with a frozen encoder: still train the stem (it sees the mask)")
    prefill: choice(PREFILLS) = key("none", "what fills the hole before the encoder (none: LaMa's zeros)")
    refiner_init: choice(REFINER_INITS) = key("default", "identity: each FFC block starts as x -> x + eps")
    output: choice(OUTPUTS) = key("direct", "direct: D(R(z)); residual: prefill + D(R(z)) - D(z)")
    attention: choice(ATTENTIONS) = key("none", "contextual: hole cells copy their best known latent match")

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(self.arch, self.mask_mode, self.delta, self.prefill, self.overrides, self.output,
                         self.attention)  # fmt: skip


class LossConfig(Section):
    """Which losses train stage 2 and their weights; a weight of 0 leaves its loss (and its model) out."""

    mode: Literal["pixel", "latent", "both"] = key("pixel", "latent: L1 of R(z) to the frozen E(gt)")
    latent_weight: Weight = key(1.0, "weight of the latent L1")
    l1_known: Weight = key(1.0, "pixel L1 weight outside the hole")
    l1_missing: Weight = key(1.0, "pixel L1 weight inside the hole")
    adversarial: Weight = key(0.0, "weight of a pixel PatchGAN (non-saturating)")
    gp_coef: Weight = key(0.001, "R1 gradient penalty of the discriminators")
    mask_as_fake_target: bool = key(True, "the discriminators' fake target is the mask (LaMa)")
    discriminator_ndf: count(1, 512) = key(64, "the PatchGAN's width (LaMa: 64); CPU cost grows as ndf^2")
    feature_matching: Weight = key(0.0, "pixel discriminator feature matching weight")
    perceptual: Weight = key(0.0, "perceptual loss weight")
    perceptual_backbone: choice(PERCEPTUAL_BACKBONES) = key("resnet50", "the perceptual network")
    perceptual_weights: Text | None = key(None, "its weight file (null: looked up; random: untrained)")
    latent_adversarial: Weight = key(0.0, "weight of a GAN on latent features, R(z) against E(gt)")
    latent_feature_matching: Weight = key(0.0, "its feature matching weight")
    attention: Weight = key(0.0, "retrieval cross-entropy of model.attention against E(gt) patch matches")

    @property
    def use_latent(self) -> bool:
        return self.mode in ("latent", "both")

    @property
    def use_pixel(self) -> bool:
        return self.mode in ("pixel", "both")


class DataConfig(Section):
    train: Text = key("builtin", "training images: a folder, builtin (the built-in photos) or a .npz bank")
    size: count(8, 8192) = key(256, "training crop size in pixels")
    batch_size: count(1, 4096) = key(8, "images per step and device")
    num_workers: Workers = key("auto", "workers per process; auto: min(8, cores per process) on CUDA, else 2")
    mask_preset: choice(list_mask_presets) = key("wide", "training masks (masks.py)")
    max_short_side: count(8, 16384) | None = key(None, "photos' short side at most this (null: 2 x size)")
    augmentation: choice(AUGMENTATIONS) = key("none", "distortions: LaMa's augmentation (data/augment.py)")
    val: Text | None = key(None, "LaMa-layout folder scored with ssim_fid100_f1 while training")


class OptimConfig(Section):
    lr: Rate = key(1.0e-3, "the generator's Adam learning rate")
    lr_d: Rate = key(1.0e-4, "the discriminators' Adam learning rate (constant)")
    betas: tuple[Fraction, Fraction] = Field((0.9, 0.999), strict=False, description="Adam's betas")
    schedule: choice(SCHEDULES) = key("constant", "after warm-up: constant, or cosine to 0 at max_steps")
    warmup_steps: count(0) = key(0, "steps of linear learning-rate warm-up")
    ema_decay: Fraction = key(0.0, "> 0: checkpoints hold an exponential moving average of the weights")


class TrainerConfig(Section):
    max_steps: count(1) = key(1000, "generator steps of the run (the schedule's length)")
    log_every_n_steps: count(1) = key(10, "steps between logged rows")
    checkpoint_every_n_steps: count(1) = key(250, "steps between checkpoints")
    precision: Precision = key("32-true", "Lightning's precision; 32, 16 and bf16 mean these")
    gradient_clip_val: Positive | None = key(None, "clip every network's gradient norm (LaMa: 1.0)")
    accelerator: choice(accelerators, "tpu needs torch_xla") = key("auto", "Lightning's accelerator")
    devices: Devices = key(1, "a number of devices, -1, 'auto' or device indices")
    num_nodes: count(1, 10_000) = key(1, "nodes for multi-node DDP")
    strategy: Text = key("auto", "Lightning's strategy: auto, ddp, ...")
    progress_bar: bool = key(True, "show a progress bar")
    tensorboard: bool = key(False, "also log to TensorBoard (needs the tensorboard package)")
    val_check_interval: count(1) | None = key(None, "with data.val: validate every N steps (null: as saved)")
    save_top_k: count(1, 1000) = key(5, "with data.val: the best checkpoints kept, by ssim_fid100_f1")
    val_fid_feature: choice(FID_FEATURES) = key("fid-helper", "validation's FID network (stand-in: tests)")


SECTIONS = {"model": ModelConfig, "loss": LossConfig, "data": DataConfig, "optim": OptimConfig,
            "trainer": TrainerConfig}  # fmt: skip


class RunConfig(Section):
    """One run: its stage, seed, stage-1 checkpoint and the sections above."""

    stage: Literal["inpainting", "autoencoder"] = key("inpainting", "training stage")
    seed: count(0, 2**32 - 1) = key(0, "seeds weights, crops and masks")
    model: ModelConfig = key(ModelConfig(), "the network")
    autoencoder: Text | None = key(None, "stage-1 checkpoint that initialises E and D (stage 2)")
    loss: LossConfig = key(LossConfig(), "the losses")
    data: DataConfig = key(DataConfig(), "training data")
    optim: OptimConfig = key(OptimConfig(), "the optimisers")
    trainer: TrainerConfig = key(TrainerConfig(), "Lightning's Trainer")

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        m, loss = self.model, self.loss
        if m.output == "residual" and m.prefill == "none":
            raise rule("model.output residual adds the refiner's change to a prefill: set model.prefill")
        if m.attention == "contextual" and (m.mask_mode != "control" or m.output != "residual"):
            raise rule("model.attention contextual needs model.mask_mode control and model.output residual")
        if loss.attention > 0 and m.attention == "none":
            raise rule("loss.attention trains model.attention: set model.attention contextual")
        if loss.latent_adversarial > 0 and not loss.use_latent:
            raise rule("loss.latent_adversarial needs loss.mode latent or both (it judges E(gt))")
        if self.has_discriminators and self.trainer.precision == "16-mixed":  # bf16 needs no scaler
            raise rule(
                "GAN losses (loss.adversarial, loss.latent_adversarial > 0) train in 32-true or bf16-mixed, "
                "not 16-mixed (a discriminator's raw optimizer step has no loss scaler)"
            )
        if self.data.val and self.stage != "inpainting":
            raise rule("data.val (--val-data) scores inpainting; stage-1 autoencoder runs have no validation")
        return self

    @property
    def has_discriminators(self) -> bool:
        """Whether stage 2 trains a pixel or a latent discriminator: its raw optimizer step has no loss
        scaler (16-mixed refused above), and DDP must look for unused parameters (training/runner.py)."""
        return self.stage == "inpainting" and (self.loss.adversarial > 0 or self.loss.latent_adversarial > 0)

    @classmethod
    def read(cls, data: Any, source: str = "config") -> RunConfig:
        """`data` (a resolved preset, a saved config.yaml, a checkpoint's) checked and read; keys it lacks
        take today's defaults. A problem is one `LatentpaintError`: the key, the value, what is allowed."""
        if not isinstance(data, Mapping):
            raise LatentpaintError(f"{source} must be a mapping of keys to values, not {short(data)}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _one_line(exc.errors()[0], data, source) from None

    def to_dict(self) -> dict[str, Any]:
        """The plain form saved in config.yaml and in checkpoints (lists, not tuples)."""
        return self.model_dump(mode="json")

    def flat(self) -> dict[str, Any]:
        """{dotted key: value} of every setting (`model.overrides` is one value)."""
        return {f"{name}.{k}" if name in SECTIONS else name: v
                for name, value in self.to_dict().items()
                for k, v in (value.items() if name in SECTIONS else [(name, value)])}  # fmt: skip

    def updated(self, *updates: Mapping[str, Any]) -> RunConfig:
        """A copy with `updates` (nested mappings, as a preset states them) merged in, checked once."""
        data = self.to_dict()
        for update in updates:
            data = merge(data, update)
        return RunConfig.read(data)

    @property
    def optimiser(self) -> OptimiserSettings:
        o, t = self.optim, self.trainer
        return OptimiserSettings(o.lr, o.lr_d, o.betas, o.schedule, o.warmup_steps, t.max_steps,
                                 t.gradient_clip_val)  # fmt: skip


def merge(data: Mapping, update: Mapping, kind: type[Section] = RunConfig, path: str = "") -> dict:
    """`data` with `update` applied, both nested mappings of keys: a section's keys merge, any other value
    (a number, a list, `model.overrides`) is replaced whole. Unknown keys are refused here, by name."""
    out = dict(data)
    for name, value in update.items():
        where = f"{path}{name}"
        field = kind.model_fields.get(name) if isinstance(name, str) else None
        if field is None:
            raise LatentpaintError(f"config has unknown key {short(where)}")
        section = _section_of(field.annotation)
        if section is None:
            out[name] = value
        elif isinstance(value, Mapping) and isinstance(out.setdefault(name, {}), Mapping):
            out[name] = merge(out[name], value, section, where + ".")
        else:
            bad = out[name] if isinstance(value, Mapping) else value  # the update's, or what it updates
            raise LatentpaintError(f"config key {where!r} must be a mapping, not {short(bad)}")
    return out


def schema() -> dict:
    """The JSON schema of a run config: every key with its type, default, range and description."""
    return RunConfig.model_json_schema()


# -- one line per problem ----------------------------------------------------------------------------
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict = 2, 40, 40, 4, 4


def short(value: object) -> str:
    """A short repr (safe for deep or huge values read from a file) for one-line messages."""
    return _REPR.repr(value)


def _section_of(annotation: Any) -> type[Section] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, Section) else None


def _one_line(error: Any, data: Mapping, source: str) -> LatentpaintError:
    """pydantic's first error as our sentence: the dotted key, the value and what the key allows."""
    path, kind, value = [], RunConfig, data
    for part in error["loc"]:  # the key's own path: tuple indices and union tags are left out
        field = kind.model_fields.get(part) if kind is not None and isinstance(part, str) else None
        if field is None:
            break
        path.append(part)
        kind = _section_of(field.annotation)
        value = value.get(part, error["input"]) if isinstance(value, Mapping) else error["input"]
    name = ".".join(path)
    if error["type"] == "extra_forbidden":
        return LatentpaintError(f"{source} has unknown key {short('.'.join(map(str, error['loc'])))}")
    if error["type"] == "config_rule":
        where = f"{source} key {name!r}: " if name else ("" if source == "config" else f"{source}: ")
        return LatentpaintError(where + error["msg"])
    allowed = error["msg"] if error["type"] == "config_allowed" else _allowed(name)
    return LatentpaintError(f"{source} key {name!r} must be {allowed}, not {short(value)}")


@functools.cache
def _schema() -> dict:
    return schema()


def _allowed(name: str) -> str:
    """What the schema allows at the dotted key `name`, in words ("an integer from 8 to 8192")."""
    node = root = _schema()
    for part in name.split("."):
        if "$ref" in node:
            node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        node = node["properties"][part]
    return _describe(node)


def _describe(s: dict) -> str:
    if "anyOf" in s:
        return " or ".join(_describe(option) for option in s["anyOf"])
    if "const" in s:
        return repr(s["const"])
    if "enum" in s:
        return "one of " + ", ".join(str(v) for v in s["enum"])
    kind = s.get("type")
    if "$ref" in s or kind == "object":
        return "a mapping"
    if kind in ("null", "boolean", "string"):
        return {"null": "null", "boolean": "true or false", "string": "a non-empty string"}[kind]
    if kind == "array":
        items = s.get("prefixItems", [{}])
        return f"a list of {len(items)} values, each {_describe(items[0])}"
    lo, hi = s.get("minimum", s.get("exclusiveMinimum")), s.get("maximum", s.get("exclusiveMaximum"))
    if kind == "integer" and lo is not None and hi is not None:
        return f"an integer from {lo} to {hi}"
    bounds = [f"{'>=' if 'minimum' in s else '>'} {lo:g}"] if lo is not None else []
    bounds += [f"{'<=' if 'maximum' in s else '<'} {hi:g}"] if hi is not None else []
    return " ".join(["an integer" if kind == "integer" else "a finite number", " and ".join(bounds)]).strip()
