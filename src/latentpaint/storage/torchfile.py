"""Weight files read safely: torch files only with `weights_only=True`, plain pickles refused, one-line errors.

The lowest room of weight loading: models, losses, training and inference all read checkpoints through it,
so none of them needs another's loader.
"""

from __future__ import annotations

import os
import pickle
import re
import stat
import zipfile
from pathlib import Path
from typing import Any

import torch

from latentpaint.errors import LatentpaintError, quoted

# torch.save's pre-1.6 format starts with this number, pickled with protocol 2 (torch.serialization)
_LEGACY_MAGIC = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)[:-1]  # without the STOP opcode


def refuse_plain_pickle(path: str | Path) -> None:
    """A file that is a pickle but neither of torch's formats (zip archive, legacy magic number) is refused
    with a sentence saying so, instead of torch's advice to file an issue about weights_only."""
    path = Path(path)
    try:
        with open(path, "rb") as file:
            head = file.read(len(_LEGACY_MAGIC))
    except OSError:
        return  # the loader's own error names the problem
    if head[:1] == b"\x80" and head != _LEGACY_MAGIC and not zipfile.is_zipfile(path):
        raise LatentpaintError(
            f"{quoted(path)} is a plain Python pickle, not a PyTorch checkpoint (torch.save) or safetensors file; "
            "it is not loaded"
        )


def error_reason(exc: BaseException) -> str:
    """The line of an exception's message that says what went wrong, for a one-line error.

    torch's weights_only errors open with advice to retry with weights_only=False, which a user must not
    follow for an untrusted file: that line is skipped.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Weights only load failed", "Check the doc"))]
    if not useful or isinstance(exc, LookupError):  # a bare key or index says nothing on its own
        return ": ".join([type(exc).__name__, *useful[:1]])
    return useful[0]


def load_torch_file(path: str | Path) -> dict[str, Any]:
    """torch.load with weights_only=True and one-line errors for missing, truncated or unsafe files."""
    from latentpaint.files import path_kind

    path = Path(path)
    if not path.is_file():
        kind = path_kind(path)
        what = "does not exist" if kind is None else f"is {kind}; expected a checkpoint file (.ckpt)"
        raise LatentpaintError(f"checkpoint {quoted(path)} {what}")
    refuse_plain_pickle(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if unsafe:
            raise LatentpaintError(
                f"refusing to load {quoted(path)}: it references {unsafe[1]}, which is neither a tensor nor a plain "
                "container and could run code when unpickled"
            ) from None
        raise LatentpaintError(f"cannot read checkpoint {quoted(path)}: {error_reason(exc)}") from None
    except Exception as exc:  # a damaged file fails anywhere in torch's reader: RuntimeError, KeyError, ...
        raise damaged_checkpoint(path, exc) from None
    return ensure_dict(data, path)


def damaged_checkpoint(path: Path, exc: Exception) -> LatentpaintError:
    """The one-line error for a file torch's reader chokes on."""
    return LatentpaintError(
        f"cannot read checkpoint {quoted(path)} (truncated or not a PyTorch file): {error_reason(exc)}"
    )


def ensure_dict(data: Any, path: Path) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise LatentpaintError(f"checkpoint {quoted(path)} does not hold a dictionary of weights")
    return data


def read_training_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(run config, Lightning state dict) from a latentpaint training checkpoint."""
    ckpt = load_torch_file(path)
    config = (ckpt.get("hyper_parameters") or {}).get("config")
    if not isinstance(config, dict) or "state_dict" not in ckpt:
        raise LatentpaintError(
            f"{quoted(path)} is not a latentpaint training checkpoint (no config or state_dict in it)"
        )
    return config, ckpt["state_dict"]


MAX_CONFIG_BYTES = 1_000_000  # a release config.json or LaMa config.yaml is a few kB


def read_config_text(path: Path, name: str | None = None, what: str = "a model config") -> str:
    """A small config file's text, read only if it is a regular file and never past `MAX_CONFIG_BYTES`.

    Anything else is refused unread: a pipe would block the read, a device such as /dev/zero never end.
    The open does not block either (a pipe swapped in after the check), and the read is bounded rather than
    trusting the size `stat` reports, which is 0 for /proc files such as /proc/self/pagemap (terabytes).
    `name`: how messages name the file (default: the quoted path); `what`: what it should be.
    """
    from latentpaint.files import REGULAR, path_kind

    name = name or quoted(path)
    kind = path_kind(path)
    if kind not in (None, REGULAR):
        raise LatentpaintError(f"{name} is {kind}, not a config file")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise LatentpaintError(f"{name} is {path_kind(path)}, not a config file")
            data = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise LatentpaintError(f"cannot read {name}: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        over = info.st_size > MAX_CONFIG_BYTES  # a /proc file reports size 0 whatever it holds
        size = f"{info.st_size:,} bytes" if over else f"over {MAX_CONFIG_BYTES:,} bytes"
        raise LatentpaintError(
            f"{name} is {size}; {what} is at most {MAX_CONFIG_BYTES:,} (is it the right file?)"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise LatentpaintError(f"{name} is not a UTF-8 text file") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # newlines as a text-mode read gives them
