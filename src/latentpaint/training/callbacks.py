"""Lightning pieces shared by both training stages: step timing, atomic checkpoints."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from latentpaint.files import atomic_write


class StepTimer(L.Callback):
    """Logs wall time per optimiser step and images/s; writes the run's train time to `timing.json`."""

    def __init__(self, out_dir: Path, batch_size: int):
        self.out_dir, self.batch_size = Path(out_dir), batch_size
        self.step_times: list[float] = []
        self._t0 = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if torch.cuda.is_available() and pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if torch.cuda.is_available() and pl_module.device.type == "cuda":
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
        summary: dict[str, Any] = {
            "steps": len(self.step_times),
            "train_time_s": sum(self.step_times),
            "median_step_s": steps[len(steps) // 2],
            "images_per_s": self.batch_size * trainer.world_size / steps[len(steps) // 2],
        }
        path = self.out_dir / "timing.json"
        if path.exists():  # a resumed run adds to the time already spent
            previous = json.loads(path.read_text())
            summary["train_time_s"] += previous.get("train_time_s", 0.0)
            summary["steps"] += previous.get("steps", 0)
        atomic_write(path, lambda p: p.write_text(json.dumps(summary, indent=2)))


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
