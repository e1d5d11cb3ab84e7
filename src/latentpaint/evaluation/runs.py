"""Resumable runs: a run folder trains once, records its result in done.json, and is skipped after that."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from latentpaint.errors import LatentpaintError, quoted
from latentpaint.files import finite_json, path_kind, write_json_atomic

if TYPE_CHECKING:
    from latentpaint.training.config import RunConfig

DONE = "done.json"
# settings that may change between invocations of one experiment without changing what a run computes
HARDWARE_KEYS = (
    "trainer.accelerator",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.strategy",
    "trainer.progress_bar",
    "data.num_workers",
)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def timing(run_dir: Path) -> dict | None:
    """The run's timing.json (train time, median step), or None before it trained."""
    path = run_dir / "timing.json"
    return json.loads(path.read_text()) if path.is_file() else None


def config_differences(before: RunConfig, now: RunConfig, ignore: tuple[str, ...] = ()) -> list[str]:
    """'key: old -> new' for every setting that differs, leaving out `ignore` and the hardware keys."""
    old = before.flat()
    skip = set(HARDWARE_KEYS) | set(ignore)
    return [
        f"{key}: {old.get(key)!r} -> {value!r}"
        for key, value in now.flat().items()
        if key not in skip and old.get(key) != value
    ]


def _check_same_training(run_dir: Path, cfg: RunConfig, finished: bool) -> None:
    from latentpaint.storage.torchfile import read_config_text
    from latentpaint.training.config import RunConfig
    from latentpaint.training.presets import parse_yaml

    path = run_dir / "config.yaml"
    if path_kind(path) is None:
        return
    # read like a checkpoint's config: keys an earlier version did not write take today's defaults; only a
    # regular file, bounded, and a broken one is a sentence naming it
    text = read_config_text(path)
    before = RunConfig.read(parse_yaml(text, f"run config {quoted(path)}"), source=quoted(path))
    # an unfinished run may be given a larger step budget; a finished one is what it is
    changed = config_differences(before, cfg, () if finished else ("trainer.max_steps",))
    if changed:
        raise LatentpaintError(
            f"{quoted(run_dir)} was trained with other settings ({'; '.join(changed[:3])}): rerun with the "
            "original options, or use another --out"
        )


def run_once(
    run_dir: Path, cfg: RunConfig | None, settings: dict, finish: Callable[[Path], dict], label: str
) -> dict:
    """Trains `cfg` into `run_dir` (none for a classical method), then records `finish(checkpoint)` in done.json.

    A run whose done.json has the same `settings` is skipped. A run without one resumes from its
    last.ckpt, or, when training already reached max_steps, only runs `finish` again; a larger step
    budget continues an unfinished run. Different training settings in the same folder are an error.
    """
    from latentpaint.inference.checkpoints import load_torch_file
    from latentpaint.training.callbacks import last_checkpoint
    from latentpaint.training.runner import train

    done = run_dir / DONE
    record = json.loads(done.read_text()) if done.is_file() else None
    last = last_checkpoint(run_dir)
    if cfg is not None:
        _check_same_training(run_dir, cfg, record is not None)
    if record is not None and record.get("settings") == settings:
        print(f"{label}: done, skipped")
        return record
    resumed = None
    if cfg is not None:
        step = int(load_torch_file(last)["global_step"]) if last.is_file() else 0
        steps = cfg.trainer.max_steps
        if step < steps:
            resumed = step or None
            print(f"{label}: training {steps} steps" + (f", resuming at step {step}" if step else ""))
            train(cfg, run_dir, resume=last if step else None)
    print(f"{label}: predicting and evaluating")
    record = {"settings": settings, "resumed_from_step": resumed, "finished_at": now(), **finish(last)}
    write_json_atomic(done, finite_json(record))
    return record
