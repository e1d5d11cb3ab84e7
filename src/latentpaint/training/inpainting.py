"""Stage 2: train the refiner (and the mask path) on top of the stage-1 autoencoder.

`build_inpainting_system` turns the run config (`RunConfig`, training/config.py) into what this stage
trains. It hands `InpaintingSystem` explicit parts: the network, the frozen target encoder of the latent loss, the loss
weights, the optional pixel and latent discriminators, the optional perceptual loss, the optimiser
settings and the modules to keep frozen. The system only combines them, one manual step at a time: the
generator step, then each discriminator's step.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn

from latentpaint.errors import LatentpaintError, quoted
from latentpaint.files import REGULAR, path_kind
from latentpaint.losses import adversarial
from latentpaint.losses.attention import attention_retrieval_loss
from latentpaint.losses.latent import latent_l1
from latentpaint.losses.perceptual import PerceptualLoss
from latentpaint.losses.pixel import masked_l1
from latentpaint.models.discriminator import LatentDiscriminator, NLayerDiscriminator
from latentpaint.models.ffc import features_to_tensor
from latentpaint.models.generator import FFCResNetGenerator
from latentpaint.models.network import InpaintingNetwork
from latentpaint.models.refiner_init import REFINER_INITS
from latentpaint.storage.state import load_state_strict, strip_prefix
from latentpaint.storage.torchfile import read_training_checkpoint
from latentpaint.training.config import LossConfig, ModelConfig, RunConfig, short
from latentpaint.training.optim import (
    OptimiserSettings,
    adam_with_schedule,
    clip_gradient_norm,
    discriminator_adam,
    manual_step,
)

# the discriminators a system may have, in step order, with the prefix of their log keys
DISCRIMINATORS = {"discriminator": "", "latent_discriminator": "latent_"}


def init_from_autoencoder(network: InpaintingNetwork, autoencoder: FFCResNetGenerator) -> None:
    """Copies the stage-1 encoder and decoder into `network`; the refiner keeps its fresh initialisation.

    An alpha-mode stem has a 4th input channel for the mask: its weights start at zero, so at step 0
    the encoder computes exactly the stage-1 features of the masked image.
    """
    g = network.generator
    if {k: v for k, v in g.config.items() if k != "input_nc"} != {
        k: v for k, v in autoencoder.config.items() if k != "input_nc"
    }:
        raise LatentpaintError(
            f"the stage-1 autoencoder ({autoencoder.config}) does not match the generator to train ({g.config})"
        )
    refiner_keys = {f"{g.n_encoder_layers + i}." for i in range(g.n_blocks)}
    own = g.model.state_dict()
    with torch.no_grad():
        for key, value in autoencoder.model.state_dict().items():
            if key.split(".", 1)[0] + "." in refiner_keys:
                continue
            if own[key].shape != value.shape:  # the stem of an alpha-mode generator: (ngf, 4, 7, 7)
                own[key].zero_()
                own[key][:, : value.shape[1]] = value
            else:
                own[key].copy_(value)


def frozen_parts(network: InpaintingNetwork, model: ModelConfig, use_pixel: bool) -> list[nn.Module]:
    """The parts of `network` that must not train (weights and BatchNorm statistics)."""
    g = network.generator
    if model.freeze_autoencoder:
        encoder = [layer for layer in g.encoder if not (model.train_first_conv and layer is g.model[1])]
        return encoder + list(g.decoder)
    if not use_pixel:
        return list(g.decoder)  # nothing reaches the decoder without a pixel loss
    return []


def needs_targets(loss: LossConfig) -> bool:
    """Whether a loss compares with E(gt), the frozen stage-1 encoding of the whole image."""
    return loss.use_latent or loss.attention > 0


def build_inpainting_system(
    cfg: RunConfig, autoencoder_state: dict | None = None, restoring: bool = False
) -> InpaintingSystem:
    """The stage-2 system a run config describes.

    `autoencoder_state`: the stage-1 generator weights (`load_autoencoder_state`), which initialise the
    encoder and decoder and give the latent loss its targets. With `restoring`, a resumed checkpoint
    brings every weight, so none is needed. The config's plain dict is what checkpoints record.
    """
    m, loss = cfg.model, cfg.loss
    network = m.spec.build()
    # the latent space is the stage-1 autoencoder's: its encoder, frozen, gives the targets
    autoencoder = m.spec.autoencoder_generator()
    if autoencoder_state is not None:
        load_state_strict(autoencoder, autoencoder_state, cfg.autoencoder)
        init_from_autoencoder(network, autoencoder)
    elif (m.freeze_autoencoder or needs_targets(loss)) and not restoring:
        raise LatentpaintError("this preset needs a stage-1 checkpoint: pass --autoencoder PATH")
    REFINER_INITS[m.refiner_init](network)
    system = InpaintingSystem(
        network,
        loss,
        cfg.optimiser,
        target_encoder=autoencoder.encoder if needs_targets(loss) else None,
        discriminator=NLayerDiscriminator(ndf=loss.discriminator_ndf) if loss.adversarial > 0 else None,
        latent_discriminator=(
            LatentDiscriminator(network.generator.latent_channels) if loss.latent_adversarial > 0 else None
        ),
        perceptual=(
            PerceptualLoss(loss.perceptual_backbone, loss.perceptual_weights) if loss.perceptual > 0 else None
        ),
        frozen=frozen_parts(network, m, loss.use_pixel),
    )
    system.save_hyperparameters({"config": cfg.to_dict()})  # what `--resume` and the loaders read back
    return system


class InpaintingSystem(L.LightningModule):
    """Combines the inpainting network with its losses; manual optimisation for the optional GANs.

    The latent loss runs when there is a `target_encoder`, the pixel losses when `losses.use_pixel`;
    each other part is optional and trains or counts only when given.
    """

    def __init__(
        self,
        network: InpaintingNetwork,
        losses: LossConfig,
        optimiser: OptimiserSettings,
        *,
        target_encoder: nn.Module | None = None,
        discriminator: nn.Module | None = None,
        latent_discriminator: nn.Module | None = None,
        perceptual: nn.Module | None = None,
        frozen: list[nn.Module] | tuple[nn.Module, ...] = (),
    ):
        super().__init__()
        if latent_discriminator is not None and target_encoder is None:
            raise LatentpaintError("a latent discriminator judges E(gt): it needs a target encoder")
        self.network, self.losses, self.optimiser = network, losses, optimiser
        self.target_encoder = target_encoder
        self.discriminator, self.latent_discriminator = discriminator, latent_discriminator
        self.perceptual = perceptual
        self.frozen = [*frozen, *([target_encoder] if target_encoder is not None else [])]
        for module in self.frozen:
            module.requires_grad_(False).eval()
        self.automatic_optimization = False

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.frozen:
            module.eval()  # BatchNorm statistics of frozen parts never move
        return self

    def discriminators(self) -> dict[str, nn.Module]:
        """The discriminators this system has, by attribute name, in step order."""
        return {name: getattr(self, name) for name in DISCRIMINATORS if getattr(self, name) is not None}

    # -- one optimisation step: the generator, then each discriminator ---------------------------------
    def training_step(self, batch, batch_idx):
        image, mask = batch["image"], batch["mask"]
        prefilled = batch.get("prefill")
        if prefilled is None and self.network.host_prefill is not None:
            raise LatentpaintError(
                f"the batch has no 'prefill': a {self.network.prefill} prefill is computed by the data "
                "loader (TrainingDataset(prefill=...)), never inside the training step"
            )
        opts = self.optimizers()
        opt = dict(zip(["generator", *self.discriminators()], opts if isinstance(opts, list) else [opts]))
        logs: dict[str, torch.Tensor] = {}
        total, judged = self.generator_loss(image, mask, logs, prefilled)
        manual_step(self, opt["generator"], total)
        self.lr_schedulers().step()
        for name, (fake, real) in judged.items():
            d_loss = self.discriminator_step(getattr(self, name), opt[name], fake, real, mask)
            logs[f"{DISCRIMINATORS[name]}adv_d"] = d_loss

        self.log_dict({f"train/{k}": v.detach() for k, v in logs.items()}, prog_bar=False)
        self.log("train/loss", total.detach())  # shown by the progress bar at log steps (LogStepProgressBar)
        return {"loss": total.detach()}

    def generator_loss(self, image, mask, logs: dict, prefilled=None) -> tuple[torch.Tensor, dict]:
        """The generator's total loss (its terms go into `logs`) and, per discriminator to train next,
        the (fake, real) pair it judges. `prefilled`: the batch's host prefill (`batch["prefill"]`)."""
        masked = self.network.masked_image(image, mask, prefilled)
        z0 = self.network.encode_masked(masked, mask)
        z = self.network.refine(z0)
        total = image.new_zeros(())
        judged: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        if self.target_encoder is not None:
            with torch.no_grad():
                target = features_to_tensor(self.target_encoder(image))
            if self.losses.use_latent:
                total = total + self.latent_terms(z, target, logs, judged)
            if self.losses.attention > 0:  # where to copy from, learned in latent space: never decodes
                hole, known = self.network.copy_cells(mask)
                logs["attention"] = attention_retrieval_loss(
                    self.network.attention, features_to_tensor(z), target, hole, known
                )
                total = total + self.losses.attention * logs["attention"]
        if self.losses.use_pixel:  # only pixel-side losses ever run the decoder
            pred = self.network.output(masked, z0, z, mask)
            total = total + self.pixel_terms(pred, image, mask, logs, judged)
        return total, {name: judged[name] for name in DISCRIMINATORS if name in judged}

    def latent_terms(self, z, target, logs: dict, judged: dict) -> torch.Tensor:
        """L1 to `target`, the stage-1 features of the whole image, plus the latent GAN terms."""
        w = self.losses
        logs["latent_l1"] = latent_l1(z, target)
        total = w.latent_weight * logs["latent_l1"]
        if self.latent_discriminator is not None:
            z_flat = features_to_tensor(z)
            total = total + self.adversarial_terms(
                self.latent_discriminator, z_flat, target,
                w.latent_adversarial, w.latent_feature_matching, "latent_", logs,
            )  # fmt: skip
            judged["latent_discriminator"] = (z_flat, target)
        return total

    def pixel_terms(self, pred, image, mask, logs: dict, judged: dict) -> torch.Tensor:
        """Masked L1 of the network's (decoded) prediction, plus the perceptual and pixel GAN terms."""
        w = self.losses
        logs["l1"] = masked_l1(pred, image, mask, w.l1_known, w.l1_missing)
        total = logs["l1"]
        if self.perceptual is not None:
            logs["perceptual"] = self.perceptual(pred, image)
            total = total + w.perceptual * logs["perceptual"]
        if self.discriminator is not None:
            total = total + self.adversarial_terms(
                self.discriminator, pred, image, w.adversarial, w.feature_matching, "", logs
            )
            judged["discriminator"] = (pred, image)
        return total

    def adversarial_terms(self, discriminator, fake, real, weight, fm_weight, prefix, logs) -> torch.Tensor:
        """Generator-side GAN (+ feature matching) terms of one discriminator, with D frozen meanwhile."""
        discriminator.requires_grad_(False)
        fake_logits, fake_features = discriminator(fake)
        logs[f"{prefix}adv_g"] = adversarial.generator_loss(fake_logits)
        total = weight * logs[f"{prefix}adv_g"]
        if fm_weight > 0:
            with torch.no_grad():
                _, real_features = discriminator(real)
            logs[f"{prefix}feature_matching"] = adversarial.feature_matching_loss(
                fake_features, real_features
            )
            total = total + fm_weight * logs[f"{prefix}feature_matching"]
        discriminator.requires_grad_(True)
        return total

    def discriminator_step(self, discriminator, optimizer, fake, real, mask) -> torch.Tensor:
        """One step of `discriminator` (non-saturating + R1 on the real input); returns its loss."""
        w = self.losses
        real = real.detach().requires_grad_(w.gp_coef > 0)
        real_logits, _ = discriminator(real)
        fake_logits, _ = discriminator(fake.detach())
        loss = adversarial.discriminator_loss(
            real_logits, fake_logits, real, mask, w.gp_coef, w.mask_as_fake_target
        )
        manual_step(self, optimizer, loss, raw=True)
        return loss.detach()

    def on_before_optimizer_step(self, optimizer) -> None:
        # after Lightning's unscaling (16-mixed), before the step: the clip sees the true gradients
        clip_gradient_norm(self, optimizer)

    def validation_step(self, batch, batch_idx):
        """One validation pair inpainted; training/validation.py's callback scores it (data.val)."""
        from latentpaint.training.validation import predict

        return predict(self.network, batch["image"], batch["mask"])

    def configure_optimizers(self):
        params = [p for p in self.network.parameters() if p.requires_grad]
        opt_g, schedule = adam_with_schedule(params, self.optimiser)
        discriminators = [
            discriminator_adam(d.parameters(), self.optimiser) for d in self.discriminators().values()
        ]
        return [opt_g, *discriminators], [{"scheduler": schedule, "interval": "step"}]


def load_autoencoder_state(path: str) -> dict:
    """The stage-1 generator weights from a `latentpaint train autoencoder` checkpoint. Errors name
    `--autoencoder`, the flag of `train inpainting` and `experiment` that gives it (config key `autoencoder`)."""
    expected = "expected a stage-1 (autoencoder) checkpoint of `latentpaint train autoencoder`"
    kind = path_kind(path)
    if kind != REGULAR:
        what = "does not exist" if kind is None else f"is {kind}"
        raise LatentpaintError(f"--autoencoder {quoted(path)} {what}; {expected}")
    config, state = read_training_checkpoint(path)
    stage = config.get("stage")
    if stage != "autoencoder":
        found = "a stage-2 (inpainting) checkpoint" if stage == "inpainting" else f"of stage {short(stage)}"
        raise LatentpaintError(f"--autoencoder {quoted(path)} is {found}; {expected}")
    return strip_prefix(state, "generator.")


__all__ = ["InpaintingSystem", "build_inpainting_system", "init_from_autoencoder", "load_autoencoder_state"]
