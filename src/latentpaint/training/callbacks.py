"""Lightning pieces shared by both training stages: step timing, the loss guard, the progress bar, EMA of
the network, atomic checkpoints. None of them waits for a GPU outside log steps (`at_sync_point`)."""

from __future__ import annotations

import csv
import itertools
import json
import math
import time
from copy import deepcopy
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import EMAWeightAveraging, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from torch import nn
from torch.optim.swa_utils import AveragedModel

from latentpaint.files import atomic_write

# a run folder's checkpoints (the runner writes them, validation and `experiment` read them)
CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"


def last_checkpoint(out_dir: Path) -> Path:
    return Path(out_dir) / CHECKPOINT_DIR / LAST


def at_sync_point(trainer, every: tuple[int | None, ...] = ()) -> bool:
    """Whether a callback may wait for the device after this optimiser step: a log step (every
    `trainer.log_every_n_steps`), a multiple of one of `every`, the last step or a stop.

    Reading a CUDA tensor on the host (`float(loss)`, `.item()`, `torch.cuda.synchronize`) waits for every
    queued kernel, so the host cannot run ahead and queue the next step; callbacks read the device only here.
    """
    step = trainer.global_step
    if any(n and step % n == 0 for n in (trainer.log_every_n_steps, *every)):
        return True
    return bool(
        trainer.should_stop or (trainer.max_steps and trainer.max_steps > 0 and step >= trainer.max_steps)
    )


def waits_for_device(pl_module) -> bool:
    """True on devices that run asynchronously to the host (CUDA and the like); False on the CPU."""
    return pl_module.device.type != "cpu"


class StepTimer(L.Callback):
    """Logs wall time per optimiser step and images/s; writes the run's train time to `timing.json`.

    The step times travel inside checkpoints (callback state), so a resumed run reports the time of every
    step that produced its weights; steps redone after a kill are counted once.

    On a CPU each step is timed from batch start to batch end. On a GPU the host only queues work, so the
    timer waits for the device at log steps and multiples of `every` (the checkpoint interval, so a
    checkpoint holds every step's time) only (`at_sync_point`): each step of the window since the last
    one gets the window's mean time (data loading between those steps included), and the log gets it once.
    """

    def __init__(self, out_dir: Path, batch_size: int, every: tuple[int | None, ...] = ()):
        self.out_dir, self.batch_size, self.every = Path(out_dir), batch_size, tuple(every)
        self.step_times: list[float] = []
        self._t0 = 0.0
        self._window = 0  # steps since the device was last waited for (GPU)

    def state_dict(self) -> dict[str, Any]:
        return {"step_times": list(self.step_times)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.step_times = list(state_dict.get("step_times", []))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._window == 0:
            self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._window += 1
        if waits_for_device(pl_module):
            if not at_sync_point(trainer, self.every):
                return
            if pl_module.device.type == "cuda":
                torch.cuda.synchronize(pl_module.device)
        dt = (time.perf_counter() - self._t0) / self._window
        self.step_times.extend([dt] * self._window)
        self._window = 0
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


class LogStepProgressBar(TQDMProgressBar):
    """Lightning's progress bar showing the training loss, read from the device at log steps only.

    A value logged with `prog_bar=True` is turned into a Python number after every batch, a wait for
    the GPU per step; the systems log theirs without it and this bar reads `LOSS_KEYS` at sync points.
    """

    LOSS_KEYS = ("train/loss", "train/mse")

    def __init__(self, refresh_rate: int = 1):
        super().__init__(refresh_rate=refresh_rate)
        self._shown: dict[str, str] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not waits_for_device(pl_module) or at_sync_point(trainer):
            metrics = trainer.callback_metrics
            for key in self.LOSS_KEYS:
                if key in metrics:
                    self._shown["loss"] = f"{float(metrics[key]):.4g}"
                    break
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def get_metrics(self, trainer, pl_module) -> dict:
        return {**super().get_metrics(trainer, pl_module), **self._shown}


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
    """Stops with a clear message at the first non-finite loss; the last good checkpoint stays.

    On a CPU every step's loss is checked. On a GPU, where reading the loss would wait for the device,
    the first non-finite loss and its step are recorded on the device and read at sync points only: log
    steps and every multiple of `every` (the checkpoint and validation intervals), so a stop still comes
    before any checkpoint of non-finite weights is written.
    """

    def __init__(self, every: tuple[int | None, ...] = ()):
        self.every = tuple(every)
        self._bad_step: torch.Tensor | None = None  # device: first step with a non-finite loss, or -1
        self._bad_value: torch.Tensor | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        loss = loss.detach().float()
        if not waits_for_device(pl_module):
            if not math.isfinite(float(loss)):
                self._stop(float(loss), trainer.global_step)
            return
        if self._bad_step is None:
            self._bad_step, self._bad_value = loss.new_full((), -1.0), loss.new_zeros(())
        first = ~torch.isfinite(loss) & (self._bad_step < 0)
        self._bad_step = torch.where(first, loss.new_full((), float(trainer.global_step)), self._bad_step)
        self._bad_value = torch.where(first, loss, self._bad_value)
        if at_sync_point(trainer, self.every) and float(self._bad_step) >= 0:
            self._stop(float(self._bad_value), int(self._bad_step))

    def _stop(self, value: float, step: int) -> None:
        from latentpaint.errors import LatentpaintError

        raise LatentpaintError(
            f"loss became {value} at step {step}; stopping, the last good checkpoint "
            "is kept (try a lower learning rate)"
        )


class NetworkEMA(EMAWeightAveraging):
    """Lightning's EMA weight averaging of the trained network only (`pl_module.network`, or the stage-1
    `generator`), not of the whole LightningModule with its frozen target encoder, perceptual network and
    discriminators, none of which inference loads.

    Checkpoints keep Lightning's layout: `state_dict` holds the averaged network beside the raw other
    parts, `current_model_state` the raw weights for resuming, `averaging_state` the update count. The
    update needs no host sync (Lightning's reads its device-side counter every step).
    """

    MODULES = ("network", "generator")

    def __init__(self, decay: float):
        super().__init__(decay=decay)
        self.decay = decay
        self._prefix = ""
        self._updates = 0

    def _target(self, pl_module) -> nn.Module:
        for name in self.MODULES:
            module = getattr(pl_module, name, None)
            if isinstance(module, nn.Module):
                self._prefix = name + "."
                return module
        self._prefix = ""
        return pl_module

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit":
            self._average_model = AveragedModel(
                model=self._target(pl_module),
                device=self._device or pl_module.device,
                use_buffers=self._use_buffers,
                **self._kwargs,
            )
            self._updates = 0

    def _pairs(self, pl_module):
        average = self._average_model.module
        current = self._target(pl_module)
        return zip(
            itertools.chain(average.parameters(), average.buffers()),
            itertools.chain(current.parameters(), current.buffers()),
            strict=True,
        )

    @torch.no_grad()
    def _update(self, pl_module) -> None:
        # AveragedModel.update_parameters with Lightning's EMA (decay * average + (1 - decay) * current),
        # keeping its count on the host: it compares a device tensor to 0 on every call
        average_fn = self._average_model.avg_fn
        for average, current in self._pairs(pl_module):
            current = current.detach().to(average.device)
            if self._updates == 0:
                average.detach().copy_(current)
            else:
                average.detach().copy_(average_fn(average.detach(), current, self._updates))
        self._updates += 1
        self._average_model.n_averaged.fill_(self._updates)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step_idx = trainer.global_step - 1
        if trainer.global_step > self._latest_update_step and self.should_update(step_idx=step_idx):
            self._update(pl_module)
            self._latest_update_step = trainer.global_step

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch > self._latest_update_epoch and self.should_update(
            epoch_idx=trainer.current_epoch
        ):
            self._update(pl_module)
            self._latest_update_epoch = trainer.current_epoch

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        if self._average_model is None:
            return super().on_save_checkpoint(trainer, pl_module, checkpoint)
        self._target(pl_module)
        average = self._average_model.state_dict()
        checkpoint["current_model_state"] = checkpoint["state_dict"]
        averaged = {
            self._prefix + k[len("module.") :]: v for k, v in average.items() if k.startswith("module.")
        }
        checkpoint["state_dict"] = {**checkpoint["state_dict"], **averaged}
        checkpoint["averaging_state"] = {k: v for k, v in average.items() if not k.startswith("module.")}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        if self._average_model is None:
            return super().on_load_checkpoint(trainer, pl_module, checkpoint)
        self._target(pl_module)
        ours = {
            k[len(self._prefix) :]: v
            for k, v in checkpoint["state_dict"].items()
            if k.startswith(self._prefix)
        }
        if "current_model_state" in checkpoint and "averaging_state" in checkpoint:
            # also reads checkpoints whose EMA covered the whole module: only the network's part is kept
            state = {"module." + k: v for k, v in ours.items()}
            state |= {k: v for k, v in checkpoint["averaging_state"].items() if k == "n_averaged"}
            self._average_model.load_state_dict(state)
            self._updates = int(self._average_model.n_averaged)
            pl_module.load_state_dict(checkpoint["current_model_state"])
        else:
            self._average_model.module.load_state_dict(deepcopy(ours), strict=False)

    def _swap_models(self, pl_module) -> None:
        for average, current in self._pairs(pl_module):
            tmp = average.data.clone()
            average.data.copy_(current.data)
            current.data.copy_(tmp)

    def _copy_average_to_current(self, pl_module) -> None:
        for average, current in self._pairs(pl_module):
            current.data.copy_(average.data)
