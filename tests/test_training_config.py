"""training/config.py, rules.py and settings.py: the config dict, its rules and its typed reading agree."""

import argparse
import dataclasses

import pytest
import torch

from latentpaint.errors import LatentpaintError
from latentpaint.training.config import (
    DEFAULTS,
    HARDWARE,
    RULES,
    apply_hardware,
    apply_overrides,
    flatten,
    load_preset,
    validate_config,
)
from latentpaint.training.inpainting import build_inpainting_system
from latentpaint.training.settings import SECTIONS, RunConfig

# keys a run of an earlier version may lack; reading its config fills them from today's defaults
NEWER_KEYS = {
    "model": ["prefill", "refiner_init", "output"],
    "data": ["max_short_side"],
    "optim": ["schedule", "warmup_steps", "ema_decay"],
    "trainer": ["gradient_clip_val", "tensorboard"],
    "loss": ["latent_adversarial", "latent_feature_matching", "discriminator_ndf"],
}


def test_every_default_has_a_rule_and_a_typed_field():
    keys = dict(flatten(DEFAULTS))
    assert set(keys) == set(RULES)
    typed = {f"{name}.{f.name}" for name, kind in SECTIONS.items() for f in dataclasses.fields(kind)}
    assert typed == {k for k in keys if "." in k}
    assert {f.name for f in dataclasses.fields(RunConfig)} == {k.split(".")[0] for k in keys}


def test_typed_config_reads_the_dict_a_preset_resolves_to():
    config = load_preset("lama-full-framework")
    cfg = RunConfig.from_dict(config)
    assert cfg.loss.latent_weight == config["loss"]["latent_weight"] == pytest.approx(1e-3)
    assert cfg.trainer.gradient_clip_val == 1.0 and cfg.optim.betas == (0.9, 0.999)
    assert cfg.loss.use_latent and cfg.loss.use_pixel
    assert cfg.model.spec.mask_mode == config["model"]["mask_mode"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.loss.latent_weight = 2.0


def test_a_config_written_before_the_newer_keys_reads_with_their_defaults():
    old = load_preset("recipe")
    for section, keys in NEWER_KEYS.items():
        for key in keys:
            del old[section][key]
    cfg = RunConfig.from_dict(old)
    assert cfg.model.prefill == "none" and cfg.model.refiner_init == "default"  # not the recipe's: absent
    assert cfg.model.output == "direct" and cfg.loss.discriminator_ndf == 64
    assert cfg.optim.ema_decay == 0.0 and cfg.data.max_short_side is None
    assert "prefill" not in old["model"]  # the dict itself is left as it was


def test_hardware_flags_parse_once_for_every_command():
    config = load_preset("autoencoder")
    changed = apply_hardware(config, accelerator="cpu", devices="2", strategy=None)
    assert changed["trainer"]["devices"] == 2 and changed["trainer"]["accelerator"] == "cpu"
    assert changed["trainer"]["strategy"] == config["trainer"]["strategy"]
    assert apply_hardware(config, devices="0,1")["trainer"]["devices"] == "0,1"
    assert config["trainer"]["devices"] == DEFAULTS["trainer"]["devices"]  # the input is not changed
    validate_config(changed)
    with pytest.raises(ValueError, match="hardware"):
        apply_hardware(config, precision="16")
    assert set(HARDWARE) <= set(config["trainer"])


def test_train_command_sets_hardware_through_the_same_rule(tmp_path):
    from latentpaint.training.cli import resolve_config

    args = argparse.Namespace(
        stage="autoencoder", config=None, out=str(tmp_path), resume=None, set=[], autoencoder=None,
        data=None, val_data=None, accelerator="cpu", devices="3", num_nodes=None, strategy="ddp",
    )  # fmt: skip
    config, _, _ = resolve_config(args)
    assert config["trainer"]["devices"] == 3 and config["trainer"]["strategy"] == "ddp"


def test_generator_overrides_are_one_value():
    config = apply_overrides(load_preset("recipe"), ["model.overrides={n_blocks: 2}"])
    flat = dict(flatten(config))
    assert flat["model.overrides"] == {"n_blocks": 2}  # replaced whole, not merged with the preset's
    assert not any(k.startswith("model.overrides.") for k in flat)


def test_rules_reject_with_what_the_value_should_be():
    with pytest.raises(LatentpaintError, match="loss.latent_weight.*finite number"):
        validate_config(apply_overrides(load_preset("latent-control"), ["loss.latent_weight=.inf"]))
    with pytest.raises(LatentpaintError, match="trainer.devices"):
        validate_config(apply_hardware(load_preset("latent-control"), devices="gpu0"))


# -- the stage-2 system is built from the config in one place -------------------------------------------
def _system(preset: str, *sets: str):
    config = apply_overrides(load_preset(preset), ["loss.perceptual_weights=random", *sets])
    cfg = RunConfig.from_dict(config)
    state = cfg.model.spec.autoencoder_generator().state_dict()
    return config, build_inpainting_system(config, state)


@pytest.mark.parametrize(
    "preset", ["pixel-alpha", "latent-control", "lama-full-framework", "latent-adversarial"]
)
def test_system_parts_follow_the_config(preset):
    small = "{n_blocks: 1, upsample: resize}" if preset == "latent-adversarial" else "{n_blocks: 1}"
    config, system = _system(preset, f"model.overrides={small}")
    loss = RunConfig.from_dict(config).loss
    assert (system.target_encoder is not None) == loss.use_latent
    assert (system.discriminator is not None) == (loss.adversarial > 0)
    assert (system.latent_discriminator is not None) == (loss.latent_adversarial > 0)
    assert (system.perceptual is not None) == (loss.perceptual > 0)
    assert system.losses == loss and system.hparams["config"] == config  # what checkpoints record
    assert not any(p.requires_grad for p in system.target_encoder.parameters()) if loss.use_latent else True
    assert len(system.configure_optimizers()[0]) == 1 + len(system.discriminators())


def test_generator_loss_names_its_terms_and_what_each_discriminator_judges(rng_images):
    _, system = _system("lama-full-framework", "model.overrides={n_blocks: 1}")
    image, mask = rng_images(2, 32)
    logs: dict = {}
    total, judged = system.train().generator_loss(image, mask, logs)
    assert set(logs) == {"latent_l1", "l1", "perceptual", "adv_g", "feature_matching"}
    w = system.losses
    expected = (
        w.latent_weight * logs["latent_l1"] + logs["l1"] + w.perceptual * logs["perceptual"]
        + w.adversarial * logs["adv_g"] + w.feature_matching * logs["feature_matching"]
    )  # fmt: skip
    assert torch.allclose(total, expected)
    assert list(judged) == ["discriminator"] and judged["discriminator"][1] is image


def test_a_latent_discriminator_without_latent_loss_is_refused():
    with pytest.raises(LatentpaintError, match="latent_adversarial needs loss.mode latent"):
        _system("pixel-alpha", "loss.latent_adversarial=0.1")
