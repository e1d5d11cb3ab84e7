"""Official LaMa folders (`config.yaml` + `models/best.ckpt`) as an `InpaintingNetwork`.

Where the weights come from: LaMa's README (github.com/advimman/lama) links `big-lama.zip` from the
authors' release; unzipped it is a folder `big-lama/` with `config.yaml` and `models/best.ckpt`
(410,046,389 bytes). Pass that folder to `Inpainter.from_pretrained`, `latentpaint predict --model` or
`latentpaint export --checkpoint`; `latentpaint export --format safetensors` turns it into a latentpaint
release folder that loads without this module. IOPaint's `big-lama.pt` is a TorchScript program, not a
checkpoint: it is not supported (loading one raises an error that says so) — use the official folder.

Why a restricted reader: `best.ckpt` was written by pytorch-lightning 1.2 with Hydra/OmegaConf configs.
Besides tensors it pickles the class `pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint`
(the key of its `callbacks` dict) and the training config as OmegaConf objects (`DictConfig`,
`ListConfig`, `ContainerMetadata`, `Metadata`, `AnyNode`, `typing.Any`) in `hyper_parameters` and
`hparams_type`. `torch.load(weights_only=True)` therefore refuses the real file; people who load it
with `weights_only=True` first allow-list those classes (e.g. a big-lama loader that registers exactly
those seven names with `torch.serialization.add_safe_globals`), which would import and run OmegaConf and
Lightning code while unpickling. Here, a checkpoint is first read with `weights_only=True`
(`checkpoints.load_torch_file`); only if that refuses it, it is read again with an unpickler whose
`find_class` returns
  * the few torch/builtin callables that rebuild tensors and containers (the ones `weights_only` allows),
  * for a name from a module that Lightning/Hydra checkpoints are known to reference (omegaconf, hydra,
    pytorch_lightning, lightning, typing, ...), an inert placeholder class that only records its name,
    its arguments and its state — it has no behaviour, is never imported from that module, and is
    dropped with everything except `state_dict`,
  * for any other name (`os.system`, `builtins.eval`, `subprocess.Popen`, a user class ...): a refusal.
Nothing from the file can therefore run code; the generator weights must be plain tensors.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
import yaml

from latentpaint.errors import LatentpaintError
from latentpaint.inference.checkpoints import (
    damaged_checkpoint,
    ensure_dict,
    load_state_strict,
    load_torch_file,
    strip_prefix,
)

CONFIG_FILE = "config.yaml"
CHECKPOINT_FILE = Path("models") / "best.ckpt"
GENERATOR_PREFIX = "generator."

# callables the unpickler may return as themselves: they rebuild tensors and plain containers only
_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "complex"): complex,
}
# protocol-2 pickles name Python 2 modules
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
# modules whose objects Lightning / Hydra checkpoints carry next to the weights; they become placeholders
_FOREIGN_MODULES = (
    "omegaconf", "hydra", "pytorch_lightning", "lightning", "lightning_fabric", "typing", "argparse",
    "pathlib", "numpy",
)  # fmt: skip


def _codecs_encode(text: str, encoding: str = "latin1") -> bytes:
    """What protocol-2 pickles call to rebuild `bytes`; only the latin-1 form they use is accepted."""
    if encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"unexpected bytes encoding {encoding!r}")
    return text.encode("latin1")


_SAFE_GLOBALS[("_codecs", "encode")] = _codecs_encode


class ForeignObject:
    """Inert stand-in for a pickled object of another library; records what the file said, does nothing."""

    global_name = "?"

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj.args, obj.kwargs, obj.state = args, kwargs, None
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<foreign {self.global_name}>"


class _UnsafeGlobal(pickle.UnpicklingError):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def _restricted_pickle_module(foreign_seen: set[str]):
    """A `pickle_module` for `torch.load` whose unpickler only resolves the names described above."""
    placeholders: dict[str, type] = {}

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            module = _PY2_MODULES.get(module, module)
            if (module, name) in _SAFE_GLOBALS:
                return _SAFE_GLOBALS[(module, name)]
            full = f"{module}.{name}"
            if module.split(".")[0] in _FOREIGN_MODULES or (
                module == "builtins" and name in ("dict", "list")
            ):
                foreign_seen.add(full)
                if full not in placeholders:
                    placeholders[full] = type(name, (ForeignObject,), {"global_name": full})
                return placeholders[full]
            raise _UnsafeGlobal(full)

    def load(file, **kwargs):
        return Unpickler(file, **kwargs).load()

    return type("restricted_pickle", (), {"Unpickler": Unpickler, "load": staticmethod(load)})


def read_lightning_checkpoint(path: str | Path) -> tuple[dict[str, Any], set[str]]:
    """The checkpoint dict, with objects of other libraries replaced by `ForeignObject`s, and their names.

    Plain checkpoints are read with `weights_only=True`; see the module docstring for the fallback.
    """
    path = Path(path)
    raise_if_torchscript(path)
    try:
        return load_torch_file(path), set()
    except LatentpaintError:
        if not path.is_file():
            raise
    foreign: set[str] = set()
    try:
        data = torch.load(
            path, map_location="cpu", pickle_module=_restricted_pickle_module(foreign), weights_only=False
        )
    except _UnsafeGlobal as exc:
        raise LatentpaintError(
            f"refusing to load {path}: it references {exc.name}, which is neither a tensor nor a "
            "Lightning/OmegaConf object and could run code when unpickled"
        ) from None
    except Exception as exc:  # a damaged file fails anywhere in torch's reader: RuntimeError, KeyError, ...
        raise damaged_checkpoint(path, exc) from None
    return ensure_dict(data, path), foreign


def raise_if_torchscript(path: str | Path) -> None:
    """A clear error for TorchScript programs (e.g. IOPaint's big-lama.pt), which latentpaint does not run."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            is_script = any(name.endswith("constants.pkl") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return
    if is_script:
        raise LatentpaintError(
            f"{path} is a TorchScript program (like IOPaint's big-lama.pt), not a checkpoint; use the official "
            "LaMa folder big-lama/ (config.yaml + models/best.ckpt) instead"
        )


# -- config.yaml ---------------------------------------------------------------------------------------
_REFERENCE = re.compile(r"^\$\{([A-Za-z_][\w.]*)\}$")


def _resolve(value, root: dict, depth: int = 0):
    """Follows `${a.b.c}` references to other keys of the same file (OmegaConf's absolute interpolation).

    Nothing is evaluated: other interpolations (`${env:...}`, resolvers, partial strings) stay strings.
    """
    if isinstance(value, dict):
        return {k: _resolve(v, root, depth) for k, v in value.items()}
    if not isinstance(value, str) or not (match := _REFERENCE.match(value.strip())) or depth > 16:
        return value
    node: Any = root
    for key in match.group(1).split("."):
        if not isinstance(node, dict) or key not in node:
            return value
        node = node[key]
    return _resolve(node, root, depth + 1)


# LaMa FFCResNetGenerator arguments we reproduce, with the values our generator implements
_FIXED_GENERATOR_ARGS = {
    "norm_layer": None, "padding_type": "reflect", "activation_layer": None, "up_norm_layer": None,
    "up_activation": None, "spatial_transform_layers": None, "spatial_transform_kwargs": {},
    "out_ffc": False, "out_ffc_kwargs": {},
}  # fmt: skip


def generator_overrides(config: dict, source: Path) -> dict:
    """`InpaintingNetwork` keyword arguments for the `generator:` section of a LaMa training config."""
    gen = config.get("generator") if isinstance(config, dict) else None
    if not isinstance(gen, dict):
        raise LatentpaintError(f"{source} has no generator: section (is it a LaMa training config?)")
    gen = _resolve(gen, config)

    def fail(problem: str) -> LatentpaintError:
        return LatentpaintError(f"{source}: {problem}; only LaMa's ffc_resnet generators are supported")

    if gen.get("kind") != "ffc_resnet":
        raise fail(f"generator kind is {gen.get('kind')!r}")
    for key, value in gen.items():
        if key in _FIXED_GENERATOR_ARGS and value != _FIXED_GENERATOR_ARGS[key] and value is not None:
            raise fail(f"generator.{key} = {value!r} is not implemented")
    known = {"kind", "input_nc", "output_nc", "ngf", "n_downsampling", "n_blocks", "add_out_act",
             "max_features", "init_conv_kwargs", "downsample_conv_kwargs", "resnet_conv_kwargs"}  # fmt: skip
    unknown = sorted(set(gen) - known - set(_FIXED_GENERATOR_ARGS))
    if unknown:
        raise fail(f"unknown generator option {unknown[0]!r}")
    if gen.get("input_nc", 4) != 4:
        raise fail(f"input_nc is {gen.get('input_nc')} (image + mask = 4 expected)")

    def kwargs(name: str) -> dict:
        value = gen.get(name) or {}
        if not isinstance(value, dict):
            raise fail(f"generator.{name} is {value!r}")
        extra = sorted(set(value) - {"ratio_gin", "ratio_gout", "enable_lfu"})
        if extra:
            raise fail(f"generator.{name}.{extra[0]} is not implemented")
        for key in ("ratio_gin", "ratio_gout"):
            if key in value and not isinstance(value[key], int | float):
                raise fail(f"generator.{name}.{key} is {value[key]!r}, not a number")
        return value

    for name in ("init_conv_kwargs", "downsample_conv_kwargs"):
        k = kwargs(name)
        if k.get("ratio_gin", 0) != 0 or k.get("ratio_gout", 0) != 0 or k.get("enable_lfu", False):
            raise fail(f"generator.{name} must be ratio_gin 0, ratio_gout 0, enable_lfu false")
    resnet = kwargs("resnet_conv_kwargs")
    ratio_gin = resnet.get("ratio_gin", 0)
    if resnet.get("ratio_gout", ratio_gin) != ratio_gin:
        raise fail("resnet_conv_kwargs ratio_gin and ratio_gout differ")
    act = gen.get("add_out_act", True)
    # LaMa: True means tanh, False none, a string names the activation
    out_activation = ("tanh" if act else "none") if isinstance(act, bool) else act
    if out_activation not in ("sigmoid", "tanh", "none"):
        raise fail(f"add_out_act = {act!r}")
    overrides = dict(
        output_nc=gen.get("output_nc", 3), ngf=gen.get("ngf", 64), n_downsampling=gen.get("n_downsampling", 3),
        n_blocks=gen.get("n_blocks", 9), ratio_g=float(ratio_gin), enable_lfu=bool(resnet.get("enable_lfu", True)),
        max_features=gen.get("max_features", 1024), out_activation=out_activation,
    )  # fmt: skip
    for key in ("output_nc", "ngf", "n_downsampling", "n_blocks", "max_features"):
        if not isinstance(overrides[key], int) or isinstance(overrides[key], bool) or overrides[key] < 0:
            raise fail(f"generator.{key} is {overrides[key]!r}, not a count")
    return overrides


def read_lama_config(path: str | Path) -> dict:
    """config.yaml as plain data (yaml.safe_load; `${...}` interpolations stay strings)."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise LatentpaintError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise LatentpaintError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(config, dict):
        raise LatentpaintError(f"{path} does not hold a YAML mapping")
    return config


def load_lama_folder(folder: str | Path):
    """An `InpaintingNetwork("big-lama", "alpha", ...)` holding the generator of an official LaMa folder."""
    from latentpaint.models.network import InpaintingNetwork

    folder = Path(folder)
    config_path, ckpt_path = folder / CONFIG_FILE, folder / CHECKPOINT_FILE
    for required in (config_path, ckpt_path):
        if not required.is_file():
            raise LatentpaintError(
                f"{folder} is not a LaMa folder: {required.relative_to(folder)} is missing"
            )
    overrides = generator_overrides(read_lama_config(config_path), config_path)
    ckpt, _ = read_lightning_checkpoint(ckpt_path)
    state = ckpt.get("state_dict")
    if not isinstance(state, dict):
        raise LatentpaintError(f"{ckpt_path} has no state_dict (is it a LaMa Lightning checkpoint?)")
    generator = strip_prefix(state, GENERATOR_PREFIX)
    if not generator:
        raise LatentpaintError(f"{ckpt_path} holds no generator.* weights")
    bad = next((k for k, v in generator.items() if not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise LatentpaintError(f"{ckpt_path}: generator.{bad} is not a tensor")
    network = InpaintingNetwork("big-lama", "alpha", **overrides)
    load_state_strict(network.generator, generator, ckpt_path)
    return network.eval()
