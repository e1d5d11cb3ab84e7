"""Where a run config comes from: YAML presets with `base:` chains, `--set key.sub=value`, hardware flags.

A preset is found by name in the package's `configs/` folder (`latent-control`) or as a path, and states
only what differs from the defaults (training/config.py) or from the preset its `base:` names. What a
preset chain and the overrides state is merged first and checked once, into a `RunConfig`. The resolved
config is saved beside the checkpoints (`save_config`), and a resumed run reads it from its checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from latentpaint.errors import LatentpaintError, quoted
from latentpaint.files import REGULAR, atomic_write, path_kind
from latentpaint.storage.torchfile import read_config_text
from latentpaint.training.config import RunConfig, merge, short

CONFIG_DIR = resources.files("latentpaint") / "configs"
MAX_BASE_CHAIN = 32  # presets build on each other a few levels deep; a longer chain is a mistake
# Lightning's hardware settings: a command-line flag may change them between runs of one config
HARDWARE = ("accelerator", "devices", "num_nodes", "strategy")


def list_presets() -> list[str]:
    """Names of the YAML presets shipped with the package."""
    return sorted(p.name[: -len(".yaml")] for p in CONFIG_DIR.iterdir() if p.name.endswith(".yaml"))


def load_preset(
    name_or_path: str, overrides: Iterable[str] = (), *updates: Mapping, flag: str = "--config"
) -> RunConfig:
    """The preset (its `base:` chain resolved) with `--set`-style overrides on top, then `updates` (nested
    mappings such as `hardware()`'s), checked once. `flag`: the option that named the preset, for errors."""
    data = _preset_data(name_or_path, flag=flag)
    for update in [*(parse_override(item) for item in overrides), *updates]:
        data = merge(data, update)
    return RunConfig.read(data)


def apply_overrides(cfg: RunConfig, overrides: Iterable[str]) -> RunConfig:
    """`cfg` with `--set`-style overrides ('data.size=128') applied, checked once."""
    return cfg.updated(*(parse_override(item) for item in overrides))


def _preset_data(name_or_path: Any, chain: tuple[str, ...] = (), flag: str = "--config") -> dict:
    """What the preset and its bases state, merged (nothing checked yet but the keys' names)."""
    if not isinstance(name_or_path, str) or not name_or_path:
        raise LatentpaintError(f"config base {short(name_or_path)} must be a preset name or a YAML path")
    path = Path(name_or_path)
    # a path (never a preset's name) to something other than a file is refused unread: a pipe would block
    given = f"config base {quoted(name_or_path)}" if chain else f"{flag} {quoted(name_or_path)}"
    kind = path_kind(path) if path.suffix in (".yaml", ".yml") or "/" in name_or_path else None
    if kind not in (None, REGULAR):
        raise LatentpaintError(f"{given} is {kind}; expected a preset name or a YAML file")
    if path.suffix in (".yaml", ".yml") and path.exists():
        source = path
    else:
        source = Path(str(CONFIG_DIR / f"{path.stem if path.suffix else name_or_path}.yaml"))
        if not source.is_file():
            raise LatentpaintError(
                f"no config {quoted(name_or_path)}: give a YAML path or one of {', '.join(list_presets())}"
            )
    here = str(source.resolve())
    if here in chain:
        raise LatentpaintError(f"config {quoted(name_or_path)} is its own base: the base: chain loops")
    if len(chain) >= MAX_BASE_CHAIN:
        raise LatentpaintError(
            f"config {quoted(name_or_path)}: base: chain longer than {MAX_BASE_CHAIN} files"
        )
    name = given if source == path else f"config {quoted(source)}"  # a file over 1 MB is not read
    data = parse_yaml(read_config_text(source, name, "a preset"), f"config {quoted(source)}")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise LatentpaintError(f"config {quoted(source)} must be a mapping of keys to values")
    base = data.pop("base", None)
    return merge(_preset_data(base, (*chain, here)) if base else {}, data)


def parse_yaml(text: str, what: str) -> Any:
    """yaml.safe_load with one-line errors: syntax errors, and nesting too deep for the parser."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        detail = (getattr(exc, "problem", None) or " ".join(str(exc).split())) + where
        raise LatentpaintError(f"cannot parse {what} as YAML: {detail}") from None
    except RecursionError:
        raise LatentpaintError(f"cannot parse {what} as YAML: it is nested too deeply") from None


def parse_override(text: str) -> dict:
    """'data.size=128' -> {'data': {'size': 128}}; the value is parsed as YAML."""
    name, _, value = text.partition("=")
    keys = name.strip().split(".")
    if "=" not in text or not all(keys):
        raise LatentpaintError(f"override {quoted(text)} must look like key.sub=value")
    update: Any = parse_yaml(value, f"the value of override {name.strip()}")
    for k in reversed(keys):
        update = {k: update}
    return update


def hardware(**flags: Any) -> dict:
    """The update that sets the given `HARDWARE` flags (None: keep the config's) as trainer keys, for
    `load_preset` or a saved config (`merge`): {"trainer": {...}}.

    Flags arrive as command-line text: a number of devices becomes an integer, '0,1' stays indices.
    """
    for name in flags:
        if name not in HARDWARE:
            raise ValueError(f"{name} is not one of the hardware settings {HARDWARE}")
    given = {
        k: int(v) if k == "devices" and str(v).isdigit() else v for k, v in flags.items() if v is not None
    }
    return {"trainer": given}


def save_config(cfg: RunConfig, path: Path) -> None:
    """The run's config.yaml: the plain dict (`RunConfig.to_dict`), readable without latentpaint; written
    whole or not at all, never into a pipe or a device (`files.atomic_write`)."""
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
