"""Official LaMa folders: config.yaml + models/best.ckpt in the layout of the released big-lama.zip."""

import importlib.util
import os
import pickle
import shutil
import sys
import types
import typing
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from latentpaint.errors import LatentpaintError
from latentpaint.inference.checkpoints import load_network
from latentpaint.inference.lama import generator_overrides, load_lama_folder, read_lightning_checkpoint
from latentpaint.models.generator import FFCResNetGenerator

FIXTURES = Path(__file__).parent / "fixtures"


def _fixture_script():
    """tests/fixtures/make_lama_fixtures.py as a module: LaMa's key layout, listed independently of ours."""
    spec = importlib.util.spec_from_file_location("make_lama_fixtures", FIXTURES / "make_lama_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# big-lama's released config.yaml (the fixture script holds its text once), shrunk to ngf 8 and 2 blocks;
# the interpolations are LaMa's own
CONFIG_YAML = _fixture_script().big_lama_config(ngf=8, n_blocks=2)


def _fake_class(module: str, name: str) -> type:
    return type(name, (), {"__module__": module, "__qualname__": name})


@pytest.fixture
def foreign_classes(monkeypatch):
    """Classes named like the OmegaConf / Lightning ones in the real best.ckpt, importable while saving."""
    names = {
        "omegaconf.dictconfig": ["DictConfig"],
        "omegaconf.listconfig": ["ListConfig"],
        "omegaconf.base": ["ContainerMetadata", "Metadata"],
        "omegaconf.nodes": ["AnyNode"],
        "pytorch_lightning.callbacks.model_checkpoint": ["ModelCheckpoint"],
    }
    classes = {}
    for module_name, class_names in names.items():
        parts = module_name.split(".")
        for i in range(1, len(parts) + 1):
            monkeypatch.setitem(sys.modules, ".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
        for class_name in class_names:
            cls = _fake_class(module_name, class_name)
            setattr(sys.modules[module_name], class_name, cls)
            classes[class_name] = cls
    return types.SimpleNamespace(**classes)


def _randomised_generator(seed: int = 0) -> FFCResNetGenerator:
    torch.manual_seed(seed)
    gen = FFCResNetGenerator(input_nc=4, ngf=8, n_blocks=2, ratio_g=0.75, enable_lfu=False)
    for m in gen.modules():  # non-trivial BN statistics, so a wrong layer would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return gen.eval()


def _dictconfig(fc) -> object:
    """An object shaped like a pickled OmegaConf DictConfig (metadata, nodes, typing.Any, dict)."""
    meta = fc.ContainerMetadata()
    meta.__dict__.update(
        ref_type=typing.Any, object_type=dict, key_type=typing.Any, element_type=typing.Any, flags={}
    )
    node = fc.AnyNode()
    node_meta = fc.Metadata()
    node_meta.__dict__.update(ref_type=typing.Any, object_type=None, optional=True, key="ngf")
    node.__dict__.update(_val=8, _metadata=node_meta)
    keys = fc.ListConfig()
    keys.__dict__.update(_content=["image", "predicted_image"], _metadata=meta)
    cfg = fc.DictConfig()
    cfg.__dict__.update(_metadata=meta, _content={"ngf": node, "key_order": keys}, _parent=None)
    return cfg


def _write_lama_folder(
    tmp_path, gen, extra: dict | None = None, hyper_parameters=None, callbacks=None, state_update=None
):
    folder = tmp_path / "big-lama"
    (folder / "models").mkdir(parents=True)
    (folder / "config.yaml").write_text(CONFIG_YAML)
    state = OrderedDict((f"generator.{k}", v) for k, v in gen.state_dict().items())
    # what else the released file holds: discriminator, losses and evaluator weights
    state["discriminator.model0.0.weight"] = torch.randn(64, 3, 4, 4)
    state["loss_resnet_pl.impl.conv1.weight"] = torch.randn(64, 3, 3, 3)
    state["val_evaluator.scores.ssim.weight"] = torch.randn(1)
    state.update(state_update or {})
    ckpt = {
        "epoch": 39,
        "global_step": 1_000_000,
        "pytorch-lightning_version": "1.2.9",
        "callbacks": callbacks if callbacks is not None else {},
        "optimizer_states": [],
        "lr_schedulers": [],
        "state_dict": state,
        **(extra or {}),
    }
    if hyper_parameters is not None:
        ckpt["hparams_name"] = "kwargs"
        ckpt["hyper_parameters"] = hyper_parameters
    torch.save(ckpt, folder / "models" / "best.ckpt")
    return folder


def _assert_same_outputs(network, gen):
    torch.manual_seed(1)
    image = torch.rand(1, 3, 64, 48)
    mask = (torch.rand(1, 1, 64, 48) > 0.6).float()
    with torch.no_grad():
        expected = gen(torch.cat([image * (1 - mask), mask], dim=1))
        assert torch.equal(network.eval()(image, mask), expected)


def test_lama_layout_with_lightning_and_omegaconf_objects_loads_strictly(tmp_path, foreign_classes):
    gen = _randomised_generator()
    cfg = _dictconfig(foreign_classes)
    folder = _write_lama_folder(
        tmp_path,
        gen,
        extra={"hparams_type": foreign_classes.DictConfig},
        hyper_parameters=cfg,
        callbacks={
            foreign_classes.ModelCheckpoint: {"best_model_score": torch.tensor(0.91), "best_model_path": "x"}
        },
    )
    with pytest.raises(pickle.UnpicklingError):  # the real file's situation: weights_only refuses it
        torch.load(folder / "models" / "best.ckpt", weights_only=True)
    for name in list(sys.modules):  # loading must not need (or import) those libraries
        if name.startswith(("omegaconf", "pytorch_lightning.callbacks.model_checkpoint")):
            del sys.modules[name]

    network = load_lama_folder(folder)
    assert network.config["arch"] == "big-lama" and network.mask_mode == "alpha"
    assert network.generator.config["ngf"] == 8 and network.generator.config["n_blocks"] == 2
    _assert_same_outputs(network, gen)
    _assert_same_outputs(load_network(folder), gen)  # the checkpoints.load_network dispatch

    ckpt, foreign = read_lightning_checkpoint(folder / "models" / "best.ckpt")
    assert "omegaconf.dictconfig.DictConfig" in foreign and "typing.Any" in foreign
    assert "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint" in foreign
    assert "omegaconf" not in sys.modules
    assert repr(ckpt["hparams_type"]) != repr(foreign_classes.DictConfig)  # a placeholder, not the class


def test_plain_lama_checkpoint_is_read_with_weights_only(tmp_path):
    gen = _randomised_generator(3)
    folder = _write_lama_folder(tmp_path, gen)
    _, foreign = read_lightning_checkpoint(folder / "models" / "best.ckpt")
    assert foreign == set()
    _assert_same_outputs(load_lama_folder(folder), gen)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _EvalEvil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return eval, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.mark.parametrize("where", ["hyper_parameters", "state_dict", "eval"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, foreign_classes, where):
    marker = tmp_path / "pwned"
    gen = _randomised_generator()
    evil = _EvalEvil(marker) if where == "eval" else _Evil(marker)
    folder = _write_lama_folder(
        tmp_path,
        gen,
        hyper_parameters={"config": _dictconfig(foreign_classes), "x": evil if where != "state_dict" else 1},
        state_update={"generator.model.1.ffc.convl2l.weight": evil} if where == "state_dict" else None,
    )
    with pytest.raises(LatentpaintError) as err:
        load_lama_folder(folder)
    message = str(err.value)
    assert "\n" not in message and "refusing" in message
    assert ("builtins.eval" if where == "eval" else "system") in message
    assert not marker.exists()


def test_unsupported_generator_config_is_one_line_error(tmp_path):
    folder = _write_lama_folder(tmp_path, _randomised_generator())
    (folder / "config.yaml").write_text(CONFIG_YAML.replace("kind: ffc_resnet", "kind: pix2pixhd_global"))
    with pytest.raises(LatentpaintError, match="ffc_resnet") as err:
        load_lama_folder(folder)
    assert "\n" not in str(err.value)


def test_interpolations_resolve_and_others_stay_strings():
    import yaml

    config = yaml.safe_load(CONFIG_YAML)
    overrides = generator_overrides(config, "config.yaml")
    assert overrides["ratio_g"] == 0.75 and overrides["out_activation"] == "sigmoid"
    assert config["losses"]["resnet_pl"]["weights_path"] == "${env:TORCH_HOME}"
    config["generator"]["add_out_act"] = True  # LaMa: True means tanh
    assert generator_overrides(config, "config.yaml")["out_activation"] == "tanh"


def test_missing_checkpoint_and_wrong_architecture(tmp_path):
    folder = _write_lama_folder(tmp_path, _randomised_generator())
    (folder / "config.yaml").write_text(CONFIG_YAML.replace("n_blocks: 2", "n_blocks: 3"))
    with pytest.raises(LatentpaintError, match="another architecture"):
        load_lama_folder(folder)
    (folder / "models" / "best.ckpt").unlink()
    with pytest.raises(LatentpaintError, match="best.ckpt is missing"):
        load_lama_folder(folder)


def test_truncated_lama_checkpoint(tmp_path, foreign_classes):
    folder = _write_lama_folder(
        tmp_path, _randomised_generator(), hyper_parameters=_dictconfig(foreign_classes)
    )
    ckpt_path = folder / "models" / "best.ckpt"
    ckpt_path.write_bytes(ckpt_path.read_bytes()[:5000])
    with pytest.raises(LatentpaintError, match="truncated") as err:
        load_lama_folder(folder)
    assert "\n" not in str(err.value)


def _torchscript_big_lama(folder: Path) -> Path:
    """A TorchScript file named like LaMa's exported `big-lama.pt` (what IOPaint users pass around)."""
    path = folder / "big-lama.pt"
    torch.jit.save(torch.jit.trace(torch.nn.Conv2d(4, 3, 1), torch.zeros(1, 4, 8, 8)), str(path))
    return path


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning", "ignore::UserWarning")
def test_torchscript_file_is_refused_clearly(tmp_path):
    path = _torchscript_big_lama(tmp_path)
    with pytest.raises(LatentpaintError, match="TorchScript"):
        read_lightning_checkpoint(path)


# -- release folders as LaMa's own environment pickles them (tests/fixtures/make_lama_fixtures.py) --------
def _generator_weights(path: Path) -> dict[str, torch.Tensor]:
    ckpt, _ = read_lightning_checkpoint(path)
    state = ckpt.get("state_dict", ckpt)
    if any(k.startswith("generator.") for k in state):
        return {k.removeprefix("generator."): v for k, v in state.items() if k.startswith("generator.")}
    return dict(state)


def _direct_generator(weights: dict[str, torch.Tensor], **arch) -> FFCResNetGenerator:
    """LaMa's generator built by hand from the architecture we know the file has, loaded strictly."""
    gen = FFCResNetGenerator(input_nc=4, ratio_g=0.75, enable_lfu=False, **arch)
    gen.load_state_dict(weights, strict=True)
    return gen.eval()


FIXTURE_ARCH = {"big-lama": dict(ngf=2, n_blocks=18), "tiny-lama": dict(ngf=4, n_blocks=2)}


@pytest.mark.parametrize("name", sorted(FIXTURE_ARCH))
def test_release_pickled_by_omegaconf_2_1_and_lightning_1_2_loads_strictly(name):
    folder = FIXTURES / "lama" / name
    ckpt_path = folder / "models" / "best.ckpt"
    with pytest.raises(pickle.UnpicklingError):  # weights_only refuses the real layout
        torch.load(ckpt_path, weights_only=True)
    ckpt, foreign = read_lightning_checkpoint(ckpt_path)
    assert {
        "omegaconf.dictconfig.DictConfig", "omegaconf.listconfig.ListConfig", "omegaconf.base.ContainerMetadata",
        "omegaconf.base.Metadata", "omegaconf.nodes.AnyNode", "typing.Any",
        "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
    } <= foreign  # fmt: skip
    assert "omegaconf" not in sys.modules  # placeholders, never the library
    ((callback, state),) = ckpt["callbacks"].items()  # Lightning 1.x: keyed by the callback class
    assert callback.global_name.endswith("ModelCheckpoint") and state["monitor"].startswith("val_ssim")
    assert ckpt["pytorch-lightning_version"] == "1.2.9"

    network = load_network(folder)
    assert network.generator.config["ngf"] == FIXTURE_ARCH[name]["ngf"]
    assert network.generator.config["n_blocks"] == FIXTURE_ARCH[name]["n_blocks"]
    _assert_same_outputs(network, _direct_generator(_generator_weights(ckpt_path), **FIXTURE_ARCH[name]))


def test_big_lama_fixture_has_every_key_of_the_real_release():
    """The fixture's config text at big-lama's real width describes big-lama; the keys are LaMa's."""
    from latentpaint.inference.checkpoints import plan_network, shapes_of
    from latentpaint.inference.lama import lama_model_config

    script = _fixture_script()
    text = script.big_lama_config()  # ngf 64, 18 blocks: the released file's text
    assert text.replace("ngf: 64", "ngf: 2") == (FIXTURES / "lama" / "big-lama" / "config.yaml").read_text()
    overrides = generator_overrides(yaml.safe_load(text), "config.yaml")
    planned = plan_network(lama_model_config(overrides))  # on the meta device: nothing allocated
    assert sum(p.numel() for p in planned.parameters()) == 50_975_875
    ours = {k.removeprefix("generator."): v for k, v in shapes_of(planned.state_dict()).items()}
    assert ours == script.lama_generator_shapes(64, 18)
    fixture = _generator_weights(FIXTURES / "lama" / "big-lama" / "models" / "best.ckpt")
    assert set(fixture) == set(ours)


def test_predict_on_the_big_lama_release_equals_running_the_generator(tmp_path):
    from PIL import Image

    from latentpaint.cli import main

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 20:50] = 255
    Image.fromarray(image).save(tmp_path / "photo.png")
    Image.fromarray(mask).save(tmp_path / "photo_mask.png")
    folder = FIXTURES / "lama" / "big-lama"
    argv = ["predict", "--model", str(folder), "--input", str(tmp_path / "photo.png"),
            "--mask", str(tmp_path / "photo_mask.png"), "--output", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 0
    (written,) = (tmp_path / "out").rglob("*.png")
    predicted = np.asarray(Image.open(written).convert("RGB")).astype(np.float64) / 255

    gen = _direct_generator(_generator_weights(folder / "models" / "best.ckpt"), **FIXTURE_ARCH["big-lama"])
    x = torch.from_numpy(image).permute(2, 0, 1)[None].double().div(255).float()
    m = torch.from_numpy(mask > 0)[None, None].float()
    with torch.no_grad():
        y = gen(torch.cat([x * (1 - m), m], dim=1))
    expected = (y * m + x * (1 - m))[0].permute(1, 2, 0).numpy()
    assert np.abs(predicted - expected).max() <= 1 / 255 + 1e-6


def test_lama_fourier_folder_with_nine_blocks(tmp_path):
    script = _fixture_script()
    folder = tmp_path / "lama-fourier"
    (folder / "models").mkdir(parents=True)
    (folder / "config.yaml").write_text(script.big_lama_config(ngf=4, n_blocks=9))
    weights = script.random_state(script.lama_generator_shapes(4, 9), torch.Generator().manual_seed(2))
    torch.save(
        {"state_dict": {f"generator.{k}": v for k, v in weights.items()}}, folder / "models" / "best.ckpt"
    )
    network = load_network(folder)
    assert network.generator.config["n_blocks"] == 9
    _assert_same_outputs(network, _direct_generator(dict(weights), ngf=4, n_blocks=9))


@pytest.mark.parametrize("layout", ["lightning-ckpt", "generator-prefixed", "bare"])
def test_single_lama_weight_files(tmp_path, layout):
    """IOPaint-style single files: the architecture comes from the weights' keys and shapes."""
    source = FIXTURES / "lama" / "tiny-lama" / "models" / "best.ckpt"
    weights = _generator_weights(source)
    path = tmp_path / "big-lama.ckpt"
    if layout == "lightning-ckpt":  # the release's best.ckpt on its own, OmegaConf objects and all
        shutil.copy(source, path)
    elif layout == "generator-prefixed":
        torch.save({f"generator.{k}": v for k, v in weights.items()}, path)
    else:
        torch.save(weights, path)
    network = load_network(path)
    config = network.generator.config
    assert (config["ngf"], config["n_blocks"], config["n_downsampling"], config["ratio_g"]) == (4, 2, 3, 0.75)
    _assert_same_outputs(network, _direct_generator(weights, ngf=4, n_blocks=2))


def test_single_file_that_is_no_lama_generator_is_one_line(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"conv.weight": torch.zeros(2)}, path)
    with pytest.raises(LatentpaintError, match="neither a latentpaint training checkpoint") as err:
        load_network(path)
    assert "\n" not in str(err.value)


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning", "ignore::UserWarning")
def test_torchscript_big_lama_pt_through_load_network(tmp_path):
    path = _torchscript_big_lama(tmp_path)
    with pytest.raises(LatentpaintError, match="TorchScript") as err:
        load_network(path)
    assert "\n" not in str(err.value) and "big-lama/" in str(err.value)


def test_relative_and_string_interpolations_resolve_env_stays():
    config = yaml.safe_load(CONFIG_YAML)
    gen = config["generator"]
    gen["ngf"] = "${data.ngf}"
    config["data"] = {"ngf": 8, "path": "${env:USER}/x"}
    gen["resnet_conv_kwargs"]["ratio_gout"] = "${.ratio_gin}"  # relative: the same node
    gen["downsample_conv_kwargs"]["ratio_gout"] = "${..init_conv_kwargs.ratio_gout}"  # one level up
    gen["kind"] = "ffc_${generator.resnet_name}"  # inside a longer string: substituted as text
    gen["resnet_name"] = "resnet"
    with pytest.raises(LatentpaintError, match="unknown generator option 'resnet_name'"):
        generator_overrides(config, "config.yaml")  # the kind resolved; the helper key is not LaMa's
    del gen["resnet_name"]
    config["resnet_name"] = "resnet"
    gen["kind"] = "ffc_${resnet_name}"
    overrides = generator_overrides(config, "config.yaml")
    assert overrides["ngf"] == 8 and overrides["ratio_g"] == 0.75
    gen["ngf"] = "${env:NGF}"  # a resolver we never run: a clear error, no environment read
    with pytest.raises(LatentpaintError, match="ngf is '\\$\\{env:NGF\\}', not a whole number"):
        generator_overrides(config, "config.yaml")
