"""The run configuration read into frozen dataclasses: code says `cfg.loss.latent_weight`.

The dictionary (`training/config.py`: defaults, presets, `--set`, validation) stays what is saved in
`config.yaml` and in checkpoints, so older runs load; `RunConfig.from_dict` reads one, filling keys that
older runs lack from today's defaults. A new config key is a default in `DEFAULTS`, a rule in `RULES`
and a field here, with the same name (a test checks that the three agree).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from latentpaint.models.spec import ModelSpec


@dataclass(frozen=True)
class ModelConfig:
    """The network (`spec`) and which of its parts stage 2 trains."""

    arch: str
    overrides: dict
    mask_mode: str
    delta: bool
    freeze_autoencoder: bool  # keep the stage-1 encoder/decoder fixed, weights and BN statistics alike
    train_first_conv: bool  # with a frozen encoder: still train the stem (it sees the mask channel)
    prefill: str
    refiner_init: str
    output: str

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(self.arch, self.mask_mode, self.delta, self.prefill, self.overrides, self.output)


@dataclass(frozen=True)
class LossConfig:
    """Which losses train stage 2 and their weights; a weight of 0 leaves its loss (and its model) out."""

    mode: str  # pixel | latent | both
    latent_weight: float
    l1_known: float
    l1_missing: float
    adversarial: float
    gp_coef: float
    mask_as_fake_target: bool
    discriminator_ndf: int
    feature_matching: float
    perceptual: float
    perceptual_backbone: str
    perceptual_weights: str | None
    latent_adversarial: float
    latent_feature_matching: float

    @property
    def use_latent(self) -> bool:
        return self.mode in ("latent", "both")

    @property
    def use_pixel(self) -> bool:
        return self.mode in ("pixel", "both")


@dataclass(frozen=True)
class DataConfig:
    train: str
    size: int
    batch_size: int
    num_workers: int
    mask_preset: str
    max_short_side: int | None
    augmentation: str  # none | distortions (data/augment.py)
    val: str | None  # LaMa-layout folder scored during training (training/validation.py)


@dataclass(frozen=True)
class OptimConfig:
    lr: float
    lr_d: float
    betas: tuple[float, float]
    schedule: str
    warmup_steps: int
    ema_decay: float


@dataclass(frozen=True)
class TrainerConfig:
    max_steps: int
    log_every_n_steps: int
    checkpoint_every_n_steps: int
    precision: str | int
    gradient_clip_val: float | None
    accelerator: str
    devices: Any  # an int, 'auto', '0,1' or a list of indices (Lightning's forms)
    num_nodes: int
    strategy: str
    progress_bar: bool
    tensorboard: bool
    val_check_interval: int | None  # with data.val; null: checkpoint_every_n_steps
    save_top_k: int  # best checkpoints kept by val_ssim_fid100_f1_total_mean
    val_fid_feature: str


SECTIONS = {
    "model": ModelConfig,
    "loss": LossConfig,
    "data": DataConfig,
    "optim": OptimConfig,
    "trainer": TrainerConfig,
}


@dataclass(frozen=True)
class RunConfig:
    """One run: its stage, seed, stage-1 checkpoint and the sections above."""

    stage: str
    seed: int
    autoencoder: str | None
    model: ModelConfig
    loss: LossConfig
    data: DataConfig
    optim: OptimConfig
    trainer: TrainerConfig

    @classmethod
    def from_dict(cls, config: dict) -> RunConfig:
        """A validated config dict (`validate_config`) read into dataclasses; keys it lacks take defaults."""
        from latentpaint.training.config import DEFAULTS, deep_merge

        full = deep_merge(DEFAULTS, config)
        sections = {name: _section(kind, full[name]) for name, kind in SECTIONS.items()}
        return cls(stage=full["stage"], seed=full["seed"], autoencoder=full["autoencoder"], **sections)


def _section(kind: type, values: dict) -> Any:
    names = {f.name for f in fields(kind)}
    if set(values) != names:  # a key added to DEFAULTS without its field (or the reverse)
        raise TypeError(f"{kind.__name__} fields {sorted(names)} do not match config keys {sorted(values)}")
    if kind is OptimConfig:
        values = {**values, "betas": tuple(values["betas"])}
    return kind(**values)
