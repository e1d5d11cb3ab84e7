"""Stage 1: the generator's encoder and decoder trained as a plain autoencoder (MSE, no masks)."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F

from latentpaint.models.registry import create_generator
from latentpaint.training.optim import adam_with_schedule, manual_step


class AutoencoderSystem(L.LightningModule):
    """E + D of an RGB generator with MSE on unmasked images; the refiner is skipped and not trained."""

    def __init__(self, config: dict):
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.config = config
        m = config["model"]
        # keys are saved as generator.model.* - LaMa's layout - and stage 2 copies E and D from them
        self.generator = create_generator(m["arch"], **{**m["overrides"], "input_nc": 3})
        # the refiner is not part of stage 1: no gradients, nothing for DDP to wait for
        self.generator.refiner.requires_grad_(False)
        self.automatic_optimization = False

    def reconstruct(self, image: torch.Tensor) -> torch.Tensor:
        return self.generator.decoder(self.generator.encoder(image))

    def training_step(self, batch, batch_idx):
        image = batch["image"]
        loss = F.mse_loss(self.reconstruct(image), image)
        opt = self.optimizers()
        manual_step(self, opt, loss)
        self.lr_schedulers().step()
        self.log("train/mse", loss, prog_bar=True)
        return {"loss": loss.detach()}

    def configure_optimizers(self):
        params = [p for p in self.generator.parameters() if p.requires_grad]
        o, steps = self.config["optim"], self.config["trainer"]["max_steps"]
        optimizer, scheduler = adam_with_schedule(params, o["lr"], o, steps)
        return [optimizer], [{"scheduler": scheduler, "interval": "step"}]
