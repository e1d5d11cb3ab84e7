"""Validation during stage-2 training, as LaMa does it: score a held-out LaMa-layout folder (`data.val`,
NAME.png + NAME_maskNNN.png) every `trainer.val_check_interval` steps with `ssim_fid100_f1` (harmonic mean
of SSIM and max(0, 100 - FID) / 100, metrics/bins.py), and keep the `trainer.save_top_k` checkpoints by
it (LaMa: `save_top_k: 5`, `monitor: val_ssim_fid100_f1_total_mean`, mode max) beside last.ckpt.

Lightning's validation loop runs it, so EMA weights (when on) are what is scored, as they are what the
checkpoints hold. With several processes (DDP) each rank scores its share of the pairs
(data/datamodule.py validation_loader); the per-image scores and FID features are gathered before the
score is computed, so the monitored value is the same everywhere and equals a one-process run's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from latentpaint.data.datamodule import validation_loader
from latentpaint.errors import LatentpaintError
from latentpaint.models.apply import image_to_tensor, inpaint_uint8, tensor_to_image
from latentpaint.training.config import RunConfig

VAL_METRIC = "val_ssim_fid100_f1_total_mean"  # LaMa's monitor name
BEST_FILENAME = "best-step{step:06d}"
SuiteFactory = Callable[[torch.device], "object"]  # device -> a MetricSuite with ssim and fid


@torch.no_grad()
def predict(network, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The Inpainter's output for one (1, 3, H, W) pair, quantised to 8 bits as a saved prediction is, so
    validation scores what `latentpaint experiment` and `evaluate` would score for this checkpoint."""
    rgb = tensor_to_image(image)
    result = inpaint_uint8(network, rgb, mask[0, 0].float().cpu().numpy(), device=image.device)
    return image_to_tensor(result).to(image.device)


class ValidationScore(Callback):
    """Accumulates the validation predictions in a MetricSuite and logs LaMa's `ssim_fid100_f1`."""

    def __init__(self, make_suite: SuiteFactory):
        self.make_suite = make_suite
        self.suite = make_suite(torch.device("cpu"))  # built now: missing FID weights fail before step 1
        if "ssim" not in self.suite.metrics or "fid" not in self.suite.metrics:
            raise LatentpaintError("validation needs SSIM and FID: " + "; ".join(self.suite.errors.values()))

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.suite.device != pl_module.device:
            self.suite = self.make_suite(pl_module.device)
        self.suite.reset()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.suite.update(outputs, batch["image"], batch["mask"])

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        gather_shards(self.suite, trainer.world_size)
        total = self.suite.compute()["total"]
        pl_module.log(VAL_METRIC, float(total["ssim_fid100_f1"]), prog_bar=True)
        pl_module.log("val_ssim_total_mean", float(total["ssim"]))
        pl_module.log("val_fid_total_mean", float(total["fid"]))


def gather_shards(suite, world_size: int) -> None:
    """Adds every other rank's share of the validation pairs to `suite` (each rank ends with all of them)."""
    if world_size <= 1 or not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    shards: list = [None] * world_size
    torch.distributed.all_gather_object(shards, suite.state())
    own = torch.distributed.get_rank()
    for rank, state in enumerate(shards):
        if rank != own:
            suite.merge(state)


def metric_suite_factory(fid_feature: str) -> SuiteFactory:
    from latentpaint.metrics.suite import MetricSuite

    return lambda device: MetricSuite(("ssim", "fid"), "lama", None, device, fid_feature)


def validation(
    cfg: RunConfig, checkpoint_dir: Path, make_suite: SuiteFactory | None = None
) -> tuple[list[Callback], dict]:
    """(callbacks, Trainer arguments) for a run's validation; none and validation off without data.val
    (which the config allows for inpainting runs only)."""
    folder, t = cfg.data.val, cfg.trainer
    if not folder:
        return [], {"limit_val_batches": 0}
    validation_loader(folder)  # Lightning asks for the loader at the first validation: check the folder now
    interval = t.val_check_interval or t.checkpoint_every_n_steps
    score = ValidationScore(make_suite or metric_suite_factory(t.val_fid_feature))
    best = ModelCheckpoint(
        dirpath=checkpoint_dir,
        filename=BEST_FILENAME,
        auto_insert_metric_name=False,
        monitor=VAL_METRIC,
        mode="max",
        save_top_k=t.save_top_k,
        enable_version_counter=False,
    )
    # validation counts training batches over the whole run (check_val_every_n_epoch=None): one "epoch"
    # here is the run, so an interval longer than the run is allowed and simply never fires
    return [score, best], {
        "val_check_interval": min(interval, t.max_steps),
        "check_val_every_n_epoch": None,
    }


def best_or_last(run_dir: Path) -> tuple[Path, str]:
    """(checkpoint to evaluate, "best" | "last"): the best by VAL_METRIC when the run validated, else last.ckpt.

    The best file is named by the top-k callback's state saved in last.ckpt, looked up in this run's
    checkpoint folder (so a moved run folder still finds it).
    """
    from latentpaint.storage.torchfile import load_torch_file
    from latentpaint.training.callbacks import CHECKPOINT_DIR, last_checkpoint

    last = last_checkpoint(run_dir)
    for key, state in load_torch_file(last).get("callbacks", {}).items():
        if isinstance(key, str) and VAL_METRIC in key and isinstance(state, dict):
            name = Path(str(state.get("best_model_path") or "")).name
            if name and (Path(run_dir) / CHECKPOINT_DIR / name).is_file():
                return Path(run_dir) / CHECKPOINT_DIR / name, "best"
    return last, "last"
