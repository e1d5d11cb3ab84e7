"""Weight files the metrics read: looked up in a weights folder or the torch hub cache, never downloaded."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch

from latentpaint.errors import LatentpaintError, quoted


def hub_checkpoints_dir() -> Path:
    """Where torch hub keeps downloaded weights: $TORCH_HOME/hub/checkpoints (honours torch.hub.set_dir)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_weight_file(filename: str, weights_dir: str | Path | None) -> Path | None:
    """`filename` in `weights_dir`, else in the torch hub cache; None when it is in neither."""
    folders = [Path(weights_dir)] if weights_dir is not None else []
    folders.append(hub_checkpoints_dir())
    return next((folder / filename for folder in folders if (folder / filename).is_file()), None)


def missing_file_error(
    what: str, filename: str, url: str, weights_dir: str | Path | None
) -> LatentpaintError:
    """The one-line error for a weight file that is in neither place we look."""
    folder = weights_dir if weights_dir is not None else hub_checkpoints_dir()
    return LatentpaintError(f"{what} needs {filename}: download it from {url} into {quoted(folder)}")


@contextlib.contextmanager
def torch_hub_holding(weight_file: Path) -> Iterator[None]:
    """Points torch hub at a temporary cache that holds `weight_file`, so torchvision finds it, not the net."""
    # torchvision's loader (load_state_dict_from_url) downloads only when the file is absent from
    # <hub dir>/checkpoints; with the file linked there it just torch.load()s it
    # restore torch's private setting exactly: get_dir() cannot tell "never set" (follow $TORCH_HOME)
    # from "set"; should the attribute ever go away, fall back to pinning the directory it resolved to
    previous = getattr(torch.hub, "_hub_dir", None)
    previous_dir = torch.hub.get_dir()
    with tempfile.TemporaryDirectory(prefix="latentpaint-hub-") as tmp:
        link = Path(tmp) / "checkpoints" / weight_file.name
        link.parent.mkdir()
        try:
            link.symlink_to(weight_file.resolve())
        except OSError:  # no symlinks (e.g. Windows without developer mode): copy instead
            shutil.copyfile(weight_file, link)
        torch.hub.set_dir(tmp)
        try:
            yield
        finally:
            if hasattr(torch.hub, "_hub_dir"):
                torch.hub._hub_dir = previous
            else:
                torch.hub.set_dir(previous_dir)
