"""Stage 1: the generator's encoder and decoder trained as a plain autoencoder (MSE, no masks)."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F

from latentpaint.models.generator import FFCResNetGenerator
from latentpaint.training.config import RunConfig
from latentpaint.training.optim import OptimiserSettings, adam_with_schedule, clip_gradient_norm, manual_step


def build_autoencoder_system(cfg: RunConfig) -> AutoencoderSystem:
    """The stage-1 system a run config describes; its plain dict is what checkpoints record."""
    # keys are saved as generator.model.* - LaMa's layout - and stage 2 copies E and D from them
    system = AutoencoderSystem(cfg.model.spec.autoencoder_generator(), cfg.optimiser)
    system.save_hyperparameters({"config": cfg.to_dict()})
    return system


class AutoencoderSystem(L.LightningModule):
    """E + D of an RGB generator with MSE on unmasked images; the refiner is skipped and not trained."""

    def __init__(self, generator: FFCResNetGenerator, optimiser: OptimiserSettings):
        super().__init__()
        self.generator, self.optimiser = generator, optimiser
        # the refiner is not part of stage 1: no gradients, nothing for DDP to wait for
        self.generator.refiner.requires_grad_(False)
        self.automatic_optimization = False

    def reconstruct(self, image: torch.Tensor) -> torch.Tensor:
        return self.generator.decoder(self.generator.encoder(image))

    def training_step(self, batch, batch_idx):
        image = batch["image"]
        loss = F.mse_loss(self.reconstruct(image), image)
        manual_step(self, self.optimizers(), loss)
        self.lr_schedulers().step()
        self.log("train/mse", loss.detach())  # shown by the progress bar at log steps (LogStepProgressBar)
        return {"loss": loss.detach()}

    def on_before_optimizer_step(self, optimizer) -> None:
        # after Lightning's unscaling (16-mixed), before the step: the clip sees the true gradients
        clip_gradient_norm(self, optimizer)

    def configure_optimizers(self):
        params = [p for p in self.generator.parameters() if p.requires_grad]
        optimizer, scheduler = adam_with_schedule(params, self.optimiser)
        return [optimizer], [{"scheduler": scheduler, "interval": "step"}]
