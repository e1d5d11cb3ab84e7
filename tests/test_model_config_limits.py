"""Tiny config files that describe huge or impossible networks are refused before anything is allocated.

A release `config.json` or a LaMa `config.yaml` decides what we build; each bomb below must end in one
`LatentpaintError` line, without reading the weights or building the network for real.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from latentpaint.errors import LatentpaintError
from latentpaint.inference import lama
from latentpaint.inference.checkpoints import CONFIG_NAME, WEIGHTS_NAME, load_network, save_release
from latentpaint.models import network as network_module
from latentpaint.models.network import InpaintingNetwork

LAMA_FIXTURE = Path(__file__).parent / "fixtures" / "lama" / "tiny-lama"

# (name, generator option, value) a config may set; LaMa's names in config.yaml, ours in config.json
HUGE = [
    ("n_blocks-1e6", "n_blocks", 1_000_000),
    ("ngf-1e5", "ngf", 100_000),
    ("n_downsampling-14", "n_downsampling", 14),
    ("ngf-zero", "ngf", 0),
    ("ngf-negative", "ngf", -8),
    ("max_features-zero", "max_features", 0),
    ("n_blocks-negative", "n_blocks", -1),
    ("ngf-float", "ngf", 8.5),
    ("ngf-string", "ngf", "64"),
]
BILLION_LAUGHS = "\n".join(
    ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
    + ["generator: *i"]
)
DEEP = 100_000


def _refuse(*args, **kwargs):
    raise AssertionError("weights were read or a network was built before the config was refused")


@pytest.fixture
def no_network(monkeypatch):
    """Fails the test if a network is built anywhere but on the meta device (which allocates nothing)."""
    real_init = InpaintingNetwork.__init__

    def init(self, *args, **kwargs):
        if torch.get_default_device().type != "meta":
            _refuse()
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(network_module.InpaintingNetwork, "__init__", init)


@pytest.fixture
def no_allocation(monkeypatch, no_network):
    """Also fails the test if the weight file is read."""
    monkeypatch.setattr(lama, "read_lightning_checkpoint", _refuse)
    monkeypatch.setattr("safetensors.torch.load_file", _refuse)


def _refused(path: Path, *match: str) -> str:
    start = time.perf_counter()
    with pytest.raises(LatentpaintError) as err:
        load_network(path)
    message = str(err.value)
    assert "\n" not in message and len(message) < 400, message
    for text in match:
        assert text in message, message
    assert time.perf_counter() - start < 5
    return message


def _lama_folder(tmp_path: Path, config_text: str) -> Path:
    folder = tmp_path / "big-lama"
    (folder / "models").mkdir(parents=True)
    (folder / "models" / "best.ckpt").write_bytes((LAMA_FIXTURE / "models" / "best.ckpt").read_bytes())
    (folder / "config.yaml").write_text(config_text)
    return folder


def _lama_config(key: str, value) -> str:
    text = (LAMA_FIXTURE / "config.yaml").read_text()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"  {key}:"):
            lines[i] = f"  {key}: {json.dumps(value)}"
            break
    else:  # max_features is not in LaMa's file: add it to the generator section
        lines.insert(lines.index("generator:") + 1, f"  {key}: {json.dumps(value)}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_release(InpaintingNetwork("thesis", "alpha", n_blocks=2), tmp_path_factory.mktemp("release"))


def _release_copy(release: Path, tmp_path: Path, config_text: str) -> Path:
    folder = tmp_path / "release"
    folder.mkdir()
    (folder / WEIGHTS_NAME).write_bytes((release / WEIGHTS_NAME).read_bytes())
    (folder / CONFIG_NAME).write_text(config_text)
    return folder


@pytest.mark.parametrize(("name", "key", "value"), HUGE, ids=[h[0] for h in HUGE])
def test_lama_config_with_absurd_architecture(name, key, value, tmp_path, no_allocation):
    folder = _lama_folder(tmp_path, _lama_config(key, value))
    _refused(folder, "config.yaml", key)


@pytest.mark.parametrize(("name", "key", "value"), HUGE, ids=[h[0] for h in HUGE])
def test_release_config_with_absurd_architecture(name, key, value, release, tmp_path, no_allocation):
    config = json.loads((release / CONFIG_NAME).read_text())
    config["overrides"][key] = value
    folder = _release_copy(release, tmp_path, json.dumps(config))
    _refused(folder, CONFIG_NAME, key)


def test_in_range_values_that_add_up_to_too_many_parameters(release, tmp_path, no_allocation):
    config = json.loads((release / CONFIG_NAME).read_text())
    config["overrides"].update(ngf=512, n_downsampling=6, max_features=4096, n_blocks=64)
    folder = _release_copy(release, tmp_path, json.dumps(config))
    _refused(folder, "parameters", "more than the supported")


def test_release_config_disagreeing_with_the_weights_is_refused_before_reading_them(
    release, tmp_path, no_allocation
):
    config = json.loads((release / CONFIG_NAME).read_text())
    config["overrides"]["n_blocks"] = 3
    folder = _release_copy(release, tmp_path, json.dumps(config))
    _refused(folder, "another architecture", "missing")


def test_lama_yaml_alias_bomb(tmp_path, no_allocation):
    folder = _lama_folder(tmp_path, BILLION_LAUGHS)
    _refused(folder, "config.yaml", "YAML nodes")


@pytest.mark.parametrize("style", ["flow", "mapping"])
def test_lama_yaml_deep_nesting(style, tmp_path, no_allocation):
    if style == "flow":
        text = "generator: " + "[" * DEEP + "]" * DEEP + "\n"
    else:
        text = "generator: " + "{a: " * DEEP + "1" + "}" * DEEP + "\n"
    folder = _lama_folder(tmp_path, text)
    _refused(folder, "config.yaml", "nests more than")


def test_release_json_deep_nesting(release, tmp_path, no_allocation):
    folder = _release_copy(release, tmp_path, '{"arch": ' + "[" * DEEP + "]" * DEEP + "}")
    _refused(folder, CONFIG_NAME, "nested too deeply")


@pytest.mark.parametrize("name", [LAMA_FIXTURE.name, "release"])
def test_huge_config_file_is_not_read(name, release, tmp_path, no_allocation):
    padding = "# " + "x" * 2_000_000 + "\n"
    if name == "release":
        folder = _release_copy(release, tmp_path, " " * 2_000_000 + (release / CONFIG_NAME).read_text())
    else:
        folder = _lama_folder(tmp_path, padding + (LAMA_FIXTURE / "config.yaml").read_text())
    _refused(folder, "bytes; a model config is at most")


def test_training_checkpoint_with_absurd_architecture(tmp_path, no_network):
    path = tmp_path / "run.ckpt"
    config = {"stage": "inpainting", "model": {"arch": "thesis", "mask_mode": "alpha", "delta": False,
                                                "overrides": {"n_blocks": 1_000_000}}}  # fmt: skip
    torch.save({"hyper_parameters": {"config": config}, "state_dict": {}}, path)
    _refused(path, "n_blocks", "outside the supported range")
