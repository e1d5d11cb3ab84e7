"""models/network.py's ModelSpec: one description of a network, read from run configs, releases and the shipped model."""

import copy
import json
from importlib import resources

import pytest
import torch

from latentpaint.errors import LatentpaintError
from latentpaint.inference.checkpoints import load_release, release_config, save_release
from latentpaint.models.network import InpaintingNetwork, ModelSpec


def test_a_network_knows_its_spec_and_the_spec_rebuilds_it():
    net = InpaintingNetwork("thesis", "control", delta=True, prefill="pyramid", n_blocks=2)
    spec = net.spec
    assert spec == ModelSpec("thesis", "control", True, "pyramid", {"n_blocks": 2, "input_nc": 3})
    twin = spec.build()
    assert twin.spec == spec and twin.state_dict().keys() == net.state_dict().keys()
    # the flat form earlier versions exposed stays as it was
    assert net.config == {"arch": "thesis", "mask_mode": "control", "delta": True, "n_blocks": 2,
                          "input_nc": 3, "prefill": "pyramid"}  # fmt: skip
    copied = copy.deepcopy(net)  # export and BN folding copy networks
    assert copied.spec == spec and copied.spec.overrides is not spec.overrides


def test_release_config_is_the_spec_plus_provenance_and_reads_back():
    net = InpaintingNetwork("thesis", "alpha", n_blocks=2)
    written = release_config(net, preset="pixel-alpha")
    assert written == {**net.spec.to_dict(), "preset": "pixel-alpha"}
    assert ModelSpec.from_dict(written) == net.spec  # provenance keys are ignored


def test_shipped_config_json_reads_and_is_written_back_unchanged():
    text = (resources.files("latentpaint") / "weights" / "default" / "config.json").read_text()
    shipped = json.loads(text)
    spec = ModelSpec.from_dict(shipped)
    assert spec.prefill == "telea" and spec.output == "residual" and spec.overrides["upsample"] == "resize"
    with torch.device("meta"):
        network = spec.build()
    extra = {k: v for k, v in shipped.items() if k not in spec.to_dict()}
    assert release_config(network, **extra) == shipped


def test_release_written_before_prefill_existed_still_loads(tmp_path):
    torch.manual_seed(0)
    folder = save_release(InpaintingNetwork("thesis", "alpha", n_blocks=2), tmp_path / "old")
    config = json.loads((folder / "config.json").read_text())
    del config["prefill"]  # the form `export` wrote before the option
    (folder / "config.json").write_text(json.dumps(config))
    loaded = load_release(folder)
    assert loaded.prefill == "none" and loaded.spec.overrides == {"n_blocks": 2, "input_nc": 4}


@pytest.mark.parametrize(
    "config, words",
    [
        ({"arch": "nope", "mask_mode": "alpha"}, "unknown generator arch"),
        ({"arch": "thesis", "mask_mode": "rgb"}, "mask_mode"),
        ({"arch": "thesis", "mask_mode": "alpha", "overrides": {"ngf": 0}}, "generator ngf"),
        ({"arch": "thesis", "mask_mode": "alpha", "prefill": "blur"}, "prefill"),
    ],
)
def test_bad_specs_are_one_line_errors(config, words):
    with pytest.raises(LatentpaintError, match=words):
        ModelSpec.from_dict(config, "config.json")


def test_plain_encoder_view_encodes_like_the_stage_one_encoder(rng_images):
    spec = ModelSpec("thesis", "alpha", overrides={"n_blocks": 1})
    torch.manual_seed(0)
    autoencoder = spec.autoencoder_generator().eval()
    view = spec.plain_encoder().build().eval()
    view.generator.load_state_dict(autoencoder.state_dict())
    image, mask = rng_images(1, 32)
    with torch.no_grad():
        ours, theirs = view.encode(image, mask), autoencoder.encoder(image * (1 - mask))
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
