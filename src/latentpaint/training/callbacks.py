"""Lightning pieces shared by both training stages: step timing, atomic checkpoints."""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from latentpaint.files import atomic_write

# a run folder's checkpoints (the runner writes them, validation and `experiment` read them)
CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"


def last_checkpoint(out_dir: Path) -> Path:
    return Path(out_dir) / CHECKPOINT_DIR / LAST


class StepTimer(L.Callback):
    """Logs wall time per optimiser step and images/s; writes the run's train time to `timing.json`.

    The step times travel inside checkpoints (callback state), so a resumed run reports the time of every
    step that produced its weights; steps redone after a kill are counted once.
    """

    def __init__(self, out_dir: Path, batch_size: int):
        self.out_dir, self.batch_size = Path(out_dir), batch_size
        self.step_times: list[float] = []
        self._t0 = 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"step_times": list(self.step_times)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.step_times = list(state_dict.get("step_times", []))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        dt = time.perf_counter() - self._t0
        self.step_times.append(dt)
        images = self.batch_size * trainer.world_size
        pl_module.log_dict(
            {"time/step_s": dt, "time/images_per_s": images / dt}, on_step=True, prog_bar=False
        )

    def on_train_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero or not self.step_times:
            return
        steps = sorted(self.step_times[1:] or self.step_times)  # the first step pays for warm-up
        summary = {
            "steps": len(self.step_times),
            "train_time_s": sum(self.step_times),
            "median_step_s": steps[len(steps) // 2],
            "images_per_s": self.batch_size * trainer.world_size / steps[len(steps) // 2],
        }
        atomic_write(self.out_dir / "timing.json", lambda p: p.write_text(json.dumps(summary, indent=2)))


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing metrics.csv; a resumed run must append to it instead."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                self.metrics_keys = sorted(csv.DictReader(f).fieldnames or [])


class ResumableCSVLogger(CSVLogger):
    """CSVLogger whose `metrics.csv` survives `--resume`; rows of steps redone after a kill appear twice
    (with the same values, training being deterministic) and readers keep the last one per step."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temp file and renames it, so a kill never leaves a broken .ckpt."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        atomic_write(Path(path), lambda tmp: torch.save(checkpoint, tmp))

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        # our checkpoints hold only tensors and plain containers, so the safe loader always works
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)


class FiniteLossGuard(L.Callback):
    """Stops with a clear message at the first non-finite loss; the last good checkpoint stays."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None and not math.isfinite(float(loss)):
            from latentpaint.errors import LatentpaintError

            raise LatentpaintError(
                f"loss became {float(loss)} at step {trainer.global_step}; stopping, the last good checkpoint "
                "is kept (try a lower learning rate)"
            )
