"""Lightning checkpoints that carry OmegaConf / Lightning objects, read without running any code from them.

`torch.load(weights_only=True)` refuses such files (LaMa's `best.ckpt`); allow-listing their classes would
import and run those libraries while unpickling. `read_lightning_checkpoint` reads them again with an
unpickler that resolves only tensor/plain-data callables and turns the known foreign classes into inert
placeholders; any other name is refused (see inference/lama.py for the whole story).
"""

from __future__ import annotations

import _compat_pickle
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from latentpaint.errors import LatentpaintError, quoted
from latentpaint.storage.torchfile import damaged_checkpoint, ensure_dict, load_torch_file

# callables the unpickler may return as themselves: they rebuild tensors and plain containers only
_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
}
# plain data types: OmegaConf metadata names them (object_type=dict, element_type=int, ...) and
# protocol-2 pickles rebuild sets through them; calling one builds data and nothing else
for _type in (int, float, complex, str, bool, dict, list, tuple, set, frozenset):
    _SAFE_GLOBALS[("builtins", _type.__name__)] = _type
# modules whose objects Lightning / Hydra checkpoints carry next to the weights; they become placeholders
_FOREIGN_MODULES = (
    "omegaconf", "hydra", "pytorch_lightning", "lightning", "lightning_fabric", "typing", "argparse",
    "pathlib", "numpy",
)  # fmt: skip


def _codecs_encode(text: str, encoding: str = "latin1") -> bytes:
    """What protocol-2 pickles call to rebuild `bytes`; only the latin-1 form they use is accepted."""
    if not isinstance(text, str) or encoding.replace("-", "").replace("_", "").lower() not in (
        "latin1",
        "iso88591",
    ):
        raise pickle.UnpicklingError(f"unexpected bytes encoding {encoding!r}")
    return text.encode("latin1")


def _bytearray(data: str | bytes = b"", encoding: str = "latin1") -> bytearray:
    """bytearray from the (text, 'latin-1') a protocol-2 pickle stores; never from a size (no allocation bomb)."""
    return bytearray(_codecs_encode(data, encoding) if isinstance(data, str) else bytes(data))


def _defaultdict(default_factory=None, *args) -> dict:
    """A plain dict for a pickled `collections.defaultdict` (OmegaConf 2.1's resolver cache).

    The factory named in the file is dropped, so reading a missing key can never call it; the items
    follow in the pickle and are set on this dict.
    """
    return {}


_SAFE_GLOBALS[("_codecs", "encode")] = _codecs_encode
_SAFE_GLOBALS[("builtins", "bytearray")] = _bytearray
_SAFE_GLOBALS[("collections", "defaultdict")] = _defaultdict


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """Python 3's name for a global that a protocol-2 pickle names the Python 2 way (`__builtin__.long`)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


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
            module, name = _python3_name(module, name)
            if (module, name) in _SAFE_GLOBALS:
                return _SAFE_GLOBALS[(module, name)]
            full = f"{module}.{name}"
            if module.split(".")[0] in _FOREIGN_MODULES:
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
            f"refusing to load {quoted(path)}: it references {exc.name}, which is neither a tensor nor a "
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
            f"{quoted(path)} is a TorchScript program (like IOPaint's big-lama.pt), not a checkpoint; use the official "
            "LaMa folder big-lama/ (config.yaml + models/best.ckpt) instead"
        )
