"""Models shipped inside the package, found by name: `Inpainter.from_pretrained("default")`.

`default` is the CPU recipe's model (benchmarks/quality.py, docs/quality.md): a release folder
(config.json + model.safetensors + MODEL_CARD.md) under `latentpaint/weights/default/`. Any other
string is a path, as before.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from latentpaint.errors import LatentpaintError

SHIPPED = ("default",)


def shipped_model_dir(name: str) -> Path:
    """The folder of a model shipped with the package."""
    folder = Path(str(resources.files("latentpaint") / "weights" / name))
    if not (folder / "model.safetensors").is_file():
        raise LatentpaintError(
            f"this installation has no shipped model {name!r} (expected {folder}/model.safetensors); "
            "reinstall latentpaint or pass --model PATH"
        )
    return folder


def resolve_model(name_or_path: str | Path) -> Path:
    """A shipped model's folder for its name, else the path itself (a local file or folder wins)."""
    path = Path(name_or_path)
    if str(name_or_path) in SHIPPED and not path.exists():
        return shipped_model_dir(str(name_or_path))
    return path
