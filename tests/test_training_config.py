"""training/config.py and presets.py: one typed declaration per key, read once, wrong values as one line."""

import argparse
import json

import pydantic
import pytest
import torch
import yaml

from latentpaint.errors import LatentpaintError
from latentpaint.training.config import SECTIONS, RunConfig, schema
from latentpaint.training.inpainting import build_inpainting_system
from latentpaint.training.presets import HARDWARE, apply_overrides, hardware, load_preset, save_config

# keys a run of an earlier version may lack; reading its config fills them from today's defaults
NEWER_KEYS = {
    "model": ["prefill", "refiner_init", "output"],
    "data": ["max_short_side"],
    "optim": ["schedule", "warmup_steps", "ema_decay"],
    "trainer": ["gradient_clip_val", "tensorboard"],
    "loss": ["latent_adversarial", "latent_feature_matching", "discriminator_ndf"],
}


def test_every_key_is_declared_once_with_a_description():
    properties = schema()["properties"]
    assert set(SECTIONS) <= set(properties) and {"stage", "seed", "autoencoder"} <= set(properties)
    for name, section in {"": RunConfig, **SECTIONS}.items():
        for key, field in section.model_fields.items():
            assert field.description, f"{name}.{key} has no description"
    assert set(RunConfig().flat()) == {
        f"{name}.{key}" for name, section in SECTIONS.items() for key in section.model_fields
    } | {"stage", "seed", "autoencoder"}


def test_typed_config_reads_what_a_preset_states():
    cfg = load_preset("lama-full-framework")
    assert cfg.loss.latent_weight == pytest.approx(1e-3)
    assert cfg.trainer.gradient_clip_val == 1.0 and cfg.optim.betas == (0.9, 0.999)
    assert cfg.loss.use_latent and cfg.loss.use_pixel
    assert cfg.model.spec.mask_mode == "control"
    assert cfg.optimiser.gradient_clip_val == 1.0 and cfg.optimiser.max_steps == cfg.trainer.max_steps
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        cfg.loss.latent_weight = 2.0


def test_a_config_written_before_the_newer_keys_reads_with_their_defaults():
    old = load_preset("recipe").to_dict()
    for section, keys in NEWER_KEYS.items():
        for key in keys:
            del old[section][key]
    old["trainer"]["precision"] = 32  # how YAML read Lightning's short name
    cfg = RunConfig.read(old)
    assert cfg.model.prefill == "none" and cfg.model.refiner_init == "default"  # not the recipe's: absent
    assert cfg.model.output == "direct" and cfg.loss.discriminator_ndf == 64
    assert cfg.optim.ema_decay == 0.0 and cfg.data.max_short_side is None
    assert cfg.trainer.precision == "32-true"
    assert "prefill" not in old["model"]  # the dict itself is left as it was


def test_the_saved_config_is_a_plain_yaml_dict_that_reads_back(tmp_path):
    cfg = load_preset("recipe", ["model.overrides={n_blocks: 2}", "trainer.devices=[0, 1]"])
    save_config(cfg, tmp_path / "config.yaml")
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["optim"]["betas"] == [0.9, 0.999] and saved["model"]["overrides"] == {"n_blocks": 2}
    assert RunConfig.read(saved) == cfg


def test_hardware_flags_parse_once_for_every_command():
    cfg = load_preset("autoencoder")
    changed = load_preset("autoencoder", [], hardware(accelerator="cpu", devices="2", strategy=None))
    assert changed.trainer.devices == 2 and changed.trainer.accelerator == "cpu"
    assert changed.trainer.strategy == cfg.trainer.strategy
    assert cfg.updated(hardware(devices="0,1")).trainer.devices == "0,1"
    with pytest.raises(LatentpaintError, match="'trainer.devices' must be"):
        load_preset("autoencoder", [], hardware(devices="two"))
    with pytest.raises(ValueError, match="hardware"):
        hardware(precision="16")
    assert set(HARDWARE) <= set(type(cfg.trainer).model_fields)


def test_train_command_sets_hardware_through_the_same_rule(tmp_path):
    from latentpaint.training.cli import resolve_config

    args = argparse.Namespace(
        stage="autoencoder", config=None, out=str(tmp_path), resume=None, set=[], autoencoder=None,
        data=None, val_data=None, accelerator="cpu", devices="3", num_nodes=None, strategy="ddp",
    )  # fmt: skip
    cfg, _, _ = resolve_config(args)
    assert cfg.trainer.devices == 3 and cfg.trainer.strategy == "ddp"


def test_generator_overrides_are_one_value():
    cfg = load_preset("recipe", ["model.overrides={n_blocks: 2}"])
    assert cfg.flat()["model.overrides"] == {"n_blocks": 2}  # replaced whole, not merged with the preset's
    assert not any(k.startswith("model.overrides.") for k in cfg.flat())
    assert apply_overrides(cfg, ["model.overrides.ngf=16"]).model.overrides == {"ngf": 16}


@pytest.mark.parametrize(
    "sets, words",
    [
        (["loss.latent_weight=.inf"], ["'loss.latent_weight' must be a finite number >= 0", "not inf"]),
        (["data.batch_size=abc"], ["'data.batch_size' must be an integer from 1 to 4096", "not 'abc'"]),
        (["data.batch_size=8.0"], ["'data.batch_size' must be an integer", "not 8.0"]),
        (["trainer.progress_bar=1"], ["'trainer.progress_bar' must be true or false, not 1"]),
        (["optim.betas=[0.9, 1]"], ["'optim.betas' must be a list of 2 values", "< 1", "[0.9, 1]"]),
        (["data.max_short_side=3"], ["'data.max_short_side' must be an integer from 8 to 16384 or null"]),
        (["model.arch=nope"], ["'model.arch' must be one of big-lama, lama-fourier, thesis"]),
        (["model.prefill=nope"], ["'model.prefill' must be one of none, pyramid, telea"]),
        (["data.mask_preset=nope"], ["'data.mask_preset' must be one of", "thick_256", "wide"]),
        (["trainer.devices=gpu0"], ["'trainer.devices' must be a number of devices", "'gpu0'"]),
        (["model.overrides={ngf: 0}"], ["'model.overrides': generator ngf is 0, outside the supported"]),
        (["data.sise=64"], ["unknown key 'data.sise'"]),
        (["loss=3"], ["'loss' must be a mapping"]),
        (["model.output=residual"], ["model.output residual", "set model.prefill"]),
        (["loss.adversarial=1", "trainer.precision=16-mixed"], ["not 16-mixed"]),
    ],
)
def test_a_wrong_value_is_one_line_with_the_key_the_value_and_what_is_allowed(sets, words):
    with pytest.raises(LatentpaintError) as error:
        load_preset("latent-control", sets)
    message = str(error.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def test_loader_workers_default_to_auto_and_integers_stay_range_checked(monkeypatch):
    """data.num_workers: auto (the default) is resolved by the data module for the trainer's devices: the
    cores per process, at most 8, on CUDA; 2 elsewhere. Integers keep their range."""
    from latentpaint.data import datamodule
    from latentpaint.training.runner import build_datamodule

    cfg = load_preset("latent-control")
    assert cfg.data.num_workers == "auto" and build_datamodule(cfg).num_workers == "auto"
    assert load_preset("latent-control", ["data.num_workers=3"]).data.num_workers == 3
    assert RunConfig.read({"data": {"num_workers": 2}}).data.num_workers == 2  # an earlier config.yaml
    for bad in ("-1", "257", "many", "true", "1.5"):
        with pytest.raises(
            LatentpaintError, match=r"'data.num_workers' must be an integer from 0 to 256 or 'auto'"
        ):
            load_preset("latent-control", [f"data.num_workers={bad}"])
    monkeypatch.setattr(datamodule.os, "cpu_count", lambda: 24)
    assert datamodule.auto_workers(1, cuda=True) == 8 and datamodule.auto_workers(4, cuda=True) == 6
    assert datamodule.auto_workers(1, cuda=False) == 2
    monkeypatch.setattr(datamodule.os, "cpu_count", lambda: 1)
    assert datamodule.auto_workers(2, cuda=True) == 1 and datamodule.auto_workers(cuda=False) == 1


@pytest.mark.parametrize("given, expected", [(32, "32-true"), ("16", "16-mixed"), ("bf16", "bf16-mixed")])
def test_precision_takes_lightnings_short_names(given, expected):
    assert load_preset("autoencoder", [f"trainer.precision={given}"]).trainer.precision == expected


@pytest.mark.parametrize("half", ["16-true", "bf16-true"])
def test_pure_half_precision_is_refused(half):
    with pytest.raises(LatentpaintError, match=rf"'trainer.precision' must be one of 32-true.*not '{half}'"):
        load_preset("autoencoder", [f"trainer.precision={half}"])


def test_a_saved_config_of_another_project_is_one_line():
    with pytest.raises(LatentpaintError, match=r"^run.ckpt: config has unknown key 'lr'$"):
        RunConfig.read({"lr": 0.1}, "run.ckpt: config")
    with pytest.raises(LatentpaintError, match="must be a mapping"):
        RunConfig.read(["stage"], "run.ckpt: config")


def test_a_preset_alias_bomb_is_refused_without_expanding_it(tmp_path):
    # a billion laughs under known keys: 10^9 values if anything walked the aliases
    anchors = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    anchors += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("data: {train: builtin}\nmodel:\n  overrides:\n" + "".join(f"    {a}\n" for a in anchors))
    with pytest.raises(LatentpaintError, match="'model.overrides': unknown generator argument 'a0'"):
        load_preset(str(bomb))
    bomb.write_text("data:\n  val: &a0 [x, x, x, x, x, x, x, x, x, x]\n  train: &a1 [*a0, *a0, *a0, *a0]\n")
    with pytest.raises(LatentpaintError, match="'data.train' must be a non-empty string"):
        load_preset(str(bomb))


def test_a_preset_over_a_megabyte_is_not_read(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * 1_100_000 + "\nseed: 1\n")
    with pytest.raises(LatentpaintError, match="bytes"):
        load_preset(str(big))


def test_the_schema_prints_every_key(capsys):
    from latentpaint.cli import main

    assert main(["config", "--schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    loss = printed["$defs"]["LossConfig"]["properties"]["latent_weight"]
    assert loss["default"] == 1.0 and loss["minimum"] == 0 and loss["description"]
    workers = printed["$defs"]["DataConfig"]["properties"]["num_workers"]
    assert workers["default"] == "auto" and "auto" in workers["description"]
    assert {"type": "integer", "minimum": 0, "maximum": 256} in workers["anyOf"]
    assert printed["$defs"]["ModelConfig"]["properties"]["arch"]["enum"] == [
        "big-lama",
        "lama-fourier",
        "thesis",
    ]
    assert main(["config", "--preset", "lama-full-framework", "--set", "data.size=64"]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["loss"]["latent_weight"] == pytest.approx(1e-3) and resolved["data"]["size"] == 64


# -- the stage-2 system is built from the typed config in one place ---------------------------------------
def _system(preset: str, *sets: str):
    cfg = load_preset(preset, ["loss.perceptual_weights=random", *sets])
    state = cfg.model.spec.autoencoder_generator().state_dict()
    return cfg, build_inpainting_system(cfg, state)


@pytest.mark.parametrize(
    "preset", ["pixel-alpha", "latent-control", "lama-full-framework", "latent-adversarial"]
)
def test_system_parts_follow_the_config(preset):
    small = "{n_blocks: 1, upsample: resize}" if preset == "latent-adversarial" else "{n_blocks: 1}"
    cfg, system = _system(preset, f"model.overrides={small}")
    loss = cfg.loss
    assert (system.target_encoder is not None) == loss.use_latent
    assert (system.discriminator is not None) == (loss.adversarial > 0)
    assert (system.latent_discriminator is not None) == (loss.latent_adversarial > 0)
    assert (system.perceptual is not None) == (loss.perceptual > 0)
    assert system.losses is loss and system.hparams["config"] == cfg.to_dict()  # what checkpoints record
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
