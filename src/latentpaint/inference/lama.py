"""Official LaMa folders (`config.yaml` + `models/best.ckpt`) and single LaMa weight files as an `InpaintingNetwork`.

Where the weights come from: LaMa's README (github.com/advimman/lama) links `big-lama.zip` (and
`lama-fourier.zip`) from the authors' release; unzipped it is a folder `big-lama/` with `config.yaml` and
`models/best.ckpt` (410,046,389 bytes). Pass that folder to `Inpainter.from_pretrained`, `latentpaint
predict --model` or `latentpaint export --checkpoint`; `latentpaint export --format safetensors` turns it
into a latentpaint release folder that loads without this module. A single weight file (the release's
`best.ckpt` on its own, or a state dict with `generator.model.*` / `model.*` keys, as other tools pass
them around) loads too: its architecture is read from its keys and shapes. IOPaint's `big-lama.pt` is a
TorchScript program, not a checkpoint: loading one raises an error that points to the official folder.

config.yaml is the Hydra/OmegaConf training config LaMa saved; it is read with `yaml.safe_load` after a
pass over the parser's events that refuses deep nesting and alias bombs, and the `${...}` references the
generator section needs are resolved here (`${generator.x}`, `${.x}`); resolvers such as `${env:USER}`
are never run and stay text.

Why a restricted reader: `best.ckpt` was written by pytorch-lightning 1.2.9 with OmegaConf 2.1 configs
and torch's default pickle protocol 2. Besides tensors it pickles the class
`pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint` (the key of its `callbacks` dict) and the
training config as OmegaConf objects (`DictConfig`, `ListConfig`, `ContainerMetadata`, `Metadata`,
`AnyNode`, `typing.Any`, a `collections.defaultdict` resolver cache) in `hyper_parameters` (and
`hparams_type`), with builtins under their Python 2 names (`__builtin__.long`). `torch.load(weights_only=
True)` therefore refuses the real file; allow-listing those classes with
`torch.serialization.add_safe_globals` would import and run OmegaConf and Lightning code while
unpickling. Here, a checkpoint is first read with `weights_only=True` (`storage.torchfile.load_torch_file`);
only if that refuses it, it is read again (`storage.pickled`) with an unpickler whose `find_class` (after mapping Python 2
names to Python 3's) returns
  * the few torch/builtin callables that rebuild tensors and plain data (the ones `weights_only` allows),
    a `defaultdict` stand-in that builds a plain dict and drops the factory, and a `bytearray` that only
    takes bytes,
  * for a name from a module that Lightning/Hydra checkpoints are known to reference (omegaconf, hydra,
    pytorch_lightning, lightning, typing, ...), an inert placeholder class that only records its name,
    its arguments and its state — it has no behaviour, is never imported from that module, and is
    dropped with everything except `state_dict`,
  * for any other name (`os.system`, `builtins.eval`, `subprocess.Popen`, a user class ...): a refusal.
Nothing from the file can therefore run code; the generator weights must be plain tensors.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
import yaml

from latentpaint.errors import LatentpaintError, quoted
from latentpaint.inference.build import network_from_config, plan_network
from latentpaint.models.limits import check_generator_args
from latentpaint.storage.pickled import (  # noqa: F401  (ForeignObject, raise_if_torchscript: old imports)
    ForeignObject,
    raise_if_torchscript,
    read_lightning_checkpoint,
)
from latentpaint.storage.state import check_state_shapes, load_state_strict, shapes_of, strip_prefix
from latentpaint.storage.torchfile import read_config_text

CONFIG_FILE = "config.yaml"
CHECKPOINT_FILE = Path("models") / "best.ckpt"
GENERATOR_PREFIX = "generator."

# -- config.yaml ---------------------------------------------------------------------------------------
# `${key.path}` (absolute) or `${.key}` / `${..key}` (relative to the node holding the value); resolver
# calls such as `${env:USER}` have a colon and never match
_REFERENCE = re.compile(r"\$\{(\.*)([A-Za-z_][\w\-]*(?:\.[A-Za-z_][\w\-]*)*)\}")
_MISSING = object()
MAX_YAML_DEPTH = 64  # LaMa's configs nest 6 levels
MAX_YAML_NODES = 100_000  # nodes after expanding aliases; big-lama's config has about 250


def _lookup(reference: re.Match, root: Any, path: tuple) -> tuple[Any, tuple]:
    """The node a reference names and its path, or `_MISSING`."""
    dots, key = reference.group(1), reference.group(2)
    base = path[: len(path) - len(dots)] if dots else ()  # one dot: the node holding the value
    if len(dots) > len(path):
        return _MISSING, ()
    node = root
    for part in (*base, *key.split(".")):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and str(part).isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING, ()
    return node, (*base, *key.split("."))


def _resolve(value, root: dict, path: tuple = (), depth: int = 0):
    """`value` with OmegaConf key interpolations replaced by the values they name (OmegaConf 2.1 rules).

    `${a.b}` alone keeps the referenced value's type; inside a longer string it is substituted as text.
    Nothing is evaluated: resolvers (`${env:USER}`, `${oc.env:...}`) and references to keys the file
    does not have stay as they are written, as do reference cycles.
    """
    if isinstance(value, dict):
        return {k: _resolve(v, root, (*path, k), depth) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, root, (*path, i), depth) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value or depth > 16:
        return value
    whole = _REFERENCE.fullmatch(value.strip())
    if whole:
        node, node_path = _lookup(whole, root, path)
        return value if node is _MISSING else _resolve(node, root, node_path, depth + 1)

    def substitute(match: re.Match) -> str:
        node, node_path = _lookup(match, root, path)
        resolved = node if node is _MISSING else _resolve(node, root, node_path, depth + 1)
        if node is _MISSING or isinstance(resolved, dict | list):
            return match.group(0)
        return str(resolved)

    return _REFERENCE.sub(substitute, value)


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
        raise LatentpaintError(f"{quoted(source)} has no generator: section (is it a LaMa training config?)")
    gen = _resolve(gen, config, ("generator",))

    def fail(problem: str) -> LatentpaintError:
        return LatentpaintError(
            f"{quoted(source)}: {problem}; only LaMa's ffc_resnet generators are supported"
        )

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
    check_generator_args(overrides, source)
    return overrides


def check_yaml_size(text: str, source: Path) -> None:
    """Refuses YAML nested deeper than MAX_YAML_DEPTH or with more than MAX_YAML_NODES nodes once aliases
    are expanded (a billion-laughs alias bomb), by walking the parser's events: nothing is built yet."""
    expanded: dict[str, int] = {}  # anchor -> nodes it stands for
    open_nodes: list[list] = []  # [anchor, nodes so far] of each mapping / sequence being read
    total = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                open_nodes.append([event.anchor, 1])
                total += 1
                if len(open_nodes) > MAX_YAML_DEPTH:
                    raise LatentpaintError(
                        f"{quoted(source)} nests more than {MAX_YAML_DEPTH} levels deep; it is not a LaMa config"
                    )
                continue
            if isinstance(event, yaml.CollectionEndEvent):
                anchor, count = open_nodes.pop()
            elif isinstance(event, yaml.ScalarEvent):
                anchor, count = event.anchor, 1
                total += 1
            elif isinstance(event, yaml.AliasEvent):
                anchor, count = None, expanded.get(event.anchor, 1)
                total += count
            else:
                continue
            if anchor is not None:
                expanded[anchor] = count
            if open_nodes:
                open_nodes[-1][1] += count
            if total > MAX_YAML_NODES:
                raise LatentpaintError(
                    f"{quoted(source)} expands to more than {MAX_YAML_NODES:,} YAML nodes (aliases of aliases?); "
                    "it is not a LaMa config"
                )
    except yaml.YAMLError as exc:
        raise LatentpaintError(f"{quoted(source)} is not valid YAML: {str(exc).splitlines()[0]}") from None


def read_lama_config(path: str | Path) -> dict:
    """config.yaml as plain data (yaml.safe_load; `${...}` interpolations stay strings).

    Huge files, deep nesting and alias bombs are refused before the document is built.
    """
    path = Path(path)
    text = read_config_text(path)
    check_yaml_size(text, path)
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LatentpaintError(f"{quoted(path)} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(config, dict):
        raise LatentpaintError(f"{quoted(path)} does not hold a YAML mapping")
    return config


def lama_model_config(overrides: dict) -> dict:
    """The latentpaint model config of a LaMa generator: the 4-channel (alpha) big-lama family."""
    return {"arch": "big-lama", "mask_mode": "alpha", "delta": False, "overrides": overrides}


def load_lama_folder(folder: str | Path):
    """An `InpaintingNetwork("big-lama", "alpha", ...)` holding the generator of an official LaMa folder.

    The architecture in config.yaml is checked against sane ranges before the checkpoint is read, and
    against the checkpoint's shapes before the network is built.
    """
    folder = Path(folder)
    config_path, ckpt_path = folder / CONFIG_FILE, folder / CHECKPOINT_FILE
    for required in (config_path, ckpt_path):
        if not required.is_file():
            raise LatentpaintError(
                f"{quoted(folder)} is not a LaMa folder: {required.relative_to(folder)} is missing"
            )
    model_config = lama_model_config(generator_overrides(read_lama_config(config_path), config_path))
    planned = plan_network(model_config, config_path)
    ckpt, _ = read_lightning_checkpoint(ckpt_path)
    state = ckpt.get("state_dict")
    if not isinstance(state, dict):
        raise LatentpaintError(f"{quoted(ckpt_path)} has no state_dict (is it a LaMa Lightning checkpoint?)")
    generator = generator_state(state, ckpt_path)
    check_state_shapes(planned.generator, shapes_of(generator), ckpt_path)
    network = network_from_config(model_config, source=config_path)
    load_state_strict(network.generator, generator, ckpt_path)
    return network.eval()


def generator_state(state: dict, source: Path) -> dict[str, torch.Tensor]:
    """The LaMa generator's weights (`model.*` keys) of a LaMa state dict, `generator.`-prefixed or bare."""
    if any(isinstance(k, str) and k.startswith(GENERATOR_PREFIX) for k in state):
        generator = strip_prefix(state, GENERATOR_PREFIX)
    elif state and all(isinstance(k, str) and k.startswith("model.") for k in state):
        generator = dict(state)
    else:
        raise LatentpaintError(
            f"{quoted(source)} holds no LaMa generator weights (generator.model.* or model.* keys)"
        )
    bad = next((k for k, v in generator.items() if not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise LatentpaintError(f"{quoted(source)}: generator weight {bad} is not a tensor")
    return generator


def infer_generator_overrides(state: dict[str, torch.Tensor], source: Path) -> dict:
    """The architecture of a LaMa generator state dict (`model.*` keys), read from its keys and shapes.

    For single weight files without LaMa's config.yaml. The output activation leaves no weights:
    sigmoid, as in every released LaMa model (big-lama, lama-fourier).
    """

    def shape(key: str) -> tuple | None:
        value = state.get(key)
        return tuple(value.shape) if isinstance(value, torch.Tensor) else None

    def fail(problem: str) -> LatentpaintError:
        return LatentpaintError(
            f"{quoted(source)}: {problem}; it does not look like LaMa's FFCResNetGenerator"
        )

    stem = shape("model.1.ffc.convl2l.weight")
    if stem is None or len(stem) != 4:
        raise fail("no stem convolution model.1.ffc.convl2l.weight")
    ngf, input_nc = stem[0], stem[1]
    if input_nc != 4:
        raise fail(f"the stem takes {input_nc} channels, not image + mask = 4")
    n_downsampling = 0
    while shape(f"model.{2 + n_downsampling}.ffc.convl2l.weight") is not None:
        n_downsampling += 1
    n_blocks = 0
    while shape(f"model.{2 + n_downsampling + n_blocks}.conv1.ffc.convl2l.weight") is not None:
        n_blocks += 1
    last = shape(f"model.{1 + n_downsampling}.ffc.convl2l.weight")
    to_global = shape(f"model.{1 + n_downsampling}.ffc.convl2g.weight")
    out = shape(f"model.{2 + n_downsampling + n_blocks + 1 + 3 * n_downsampling + 1}.weight")
    if n_downsampling == 0 or last is None or out is None or len(out) != 4:
        raise fail("the downsampling or output layers are missing")
    local, global_ = last[0], (to_global or (0,))[0]
    dim = local + global_
    ratio = global_ / dim
    if int(dim * ratio) != global_:  # float rounding: nudge so LaMa's int(dim * ratio) gives the file's split
        ratio = (global_ + 0.5) / dim
    overrides = dict(
        output_nc=out[0], ngf=ngf, n_downsampling=n_downsampling, n_blocks=n_blocks, ratio_g=ratio,
        enable_lfu=any(".convg2g.lfu." in k for k in state),
        max_features=dim if dim < ngf * 2**n_downsampling else 1024, out_activation="sigmoid",
    )  # fmt: skip
    check_generator_args(overrides, source)
    return overrides


def load_lama_weights(ckpt: dict, path: str | Path):
    """An `InpaintingNetwork` from a single LaMa weight file (IOPaint-style `.ckpt`, or a bare state dict).

    `ckpt` is the file's content (`read_lightning_checkpoint`): a Lightning checkpoint whose
    `state_dict` has `generator.*` keys, or a state dict with `generator.model.*` or `model.*` keys.
    """
    path = Path(path)
    state = ckpt.get("state_dict") if isinstance(ckpt.get("state_dict"), dict) else ckpt
    if not any(isinstance(k, str) and k.startswith(("generator.model.", "model.")) for k in state):
        raise LatentpaintError(
            f"{quoted(path)} is neither a latentpaint training checkpoint (no config in its hyper_parameters) nor "
            "LaMa generator weights (no generator.model.* or model.* keys)"
        )
    generator = generator_state(state, path)
    model_config = lama_model_config(infer_generator_overrides(generator, path))
    network = network_from_config(
        model_config, {f"generator.{k}": s for k, s in shapes_of(generator).items()}, path
    )
    load_state_strict(network.generator, generator, path)
    return network.eval()
