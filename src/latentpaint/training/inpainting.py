"""Stage 2: train the refiner (and the mask path) on top of the stage-1 autoencoder.

The switches are explicit constructor-config entries, not branches on a whole config tree:
mask mode (alpha | control), loss mode (pixel | latent | both), which parts are frozen, and the
optional LaMa losses (adversarial + R1, feature matching, perceptual).
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn

from latentpaint.errors import LatentpaintError
from latentpaint.losses.adversarial import discriminator_loss, feature_matching_loss, generator_loss
from latentpaint.losses.latent import latent_l1
from latentpaint.losses.perceptual import PerceptualLoss
from latentpaint.losses.pixel import masked_l1
from latentpaint.models.discriminator import LatentDiscriminator, NLayerDiscriminator
from latentpaint.models.ffc import features_to_tensor
from latentpaint.models.generator import FFCResNetGenerator
from latentpaint.models.network import InpaintingNetwork
from latentpaint.storage.state import load_state_strict, strip_prefix
from latentpaint.storage.torchfile import read_training_checkpoint
from latentpaint.training.optim import adam_with_schedule, manual_step

IDENTITY_EPS = 1e-3
REFINER_INITS = ("default", "identity")


def init_refiner_as_identity(network: InpaintingNetwork) -> None:
    """Makes every FFC ResNet block of the refiner start as (almost) the identity.

    The block adds conv2(conv1(x)) to x, and conv2 ends in BatchNorm + ReLU. With the BN scale at zero
    the branch is a constant ReLU(bias): zero-gamma initialisation (Goyal et al. 2017) as such would give
    ReLU(0) = 0 and no gradient, so the bias is a small positive epsilon. At step 0 the refiner then passes
    the encoder's features through, and with a prefilled hole and zero mask-control convs the network
    starts as the stage-1 autoencoder applied to the prefill; training only has to improve on that.
    """
    with torch.no_grad():
        for block in network.generator.refiner:
            for bn in (block.conv2.bn_l, block.conv2.bn_g):
                if isinstance(bn, nn.BatchNorm2d):
                    bn.weight.zero_()
                    bn.bias.fill_(IDENTITY_EPS)


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


class InpaintingSystem(L.LightningModule):
    """Combines the inpainting network with its losses; manual optimisation for the optional GAN."""

    def __init__(self, config: dict, autoencoder_state: dict | None = None, restoring: bool = False):
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.config = config
        m, loss = config["model"], config["loss"]
        if loss["mode"] not in ("pixel", "latent", "both"):
            raise LatentpaintError(f"loss.mode must be pixel, latent or both, not {loss['mode']!r}")
        self.use_latent = loss["mode"] in ("latent", "both")
        self.use_pixel = loss["mode"] in ("pixel", "both")
        self.network = InpaintingNetwork(
            m["arch"], m["mask_mode"], m["delta"], m.get("prefill", "none"), **m["overrides"]
        )

        # the latent space is the stage-1 autoencoder's: its encoder, frozen, gives the targets
        autoencoder = FFCResNetGenerator(**{**self.network.generator.config, "input_nc": 3})
        if autoencoder_state is not None:
            load_state_strict(autoencoder, autoencoder_state, config["autoencoder"])
            init_from_autoencoder(self.network, autoencoder)
        elif (m["freeze_autoencoder"] or self.use_latent) and not restoring:
            raise LatentpaintError("this preset needs a stage-1 checkpoint: pass --autoencoder PATH")
        refiner_init = m.get("refiner_init", "default")
        if refiner_init not in REFINER_INITS:
            raise LatentpaintError(
                f"model.refiner_init must be one of {', '.join(REFINER_INITS)}, not {refiner_init!r}"
            )
        if refiner_init == "identity":
            init_refiner_as_identity(self.network)
        self.target_encoder = autoencoder.encoder.requires_grad_(False) if self.use_latent else None

        self.frozen = self._freeze()
        self.discriminator = NLayerDiscriminator() if loss["adversarial"] > 0 else None
        if loss["latent_adversarial"] > 0 and not self.use_latent:
            raise LatentpaintError("loss.latent_adversarial needs loss.mode latent or both (it judges E(gt))")
        self.latent_discriminator = (
            LatentDiscriminator(self.network.generator.latent_channels)
            if loss["latent_adversarial"] > 0
            else None
        )
        self.perceptual = (
            PerceptualLoss(loss["perceptual_backbone"], loss["perceptual_weights"])
            if loss["perceptual"] > 0
            else None
        )
        self.automatic_optimization = False

    def _freeze(self) -> list[nn.Module]:
        """Fixes what must not train; returns the modules that must stay in eval mode (BN statistics)."""
        m, g = self.config["model"], self.network.generator
        frozen: list[nn.Module] = []
        if m["freeze_autoencoder"]:
            stem = g.model[1]
            frozen += [layer for layer in g.encoder if not (m["train_first_conv"] and layer is stem)]
            frozen += list(g.decoder)
        elif not self.use_pixel:
            frozen += list(g.decoder)  # nothing reaches the decoder without a pixel loss
        if self.target_encoder is not None:
            frozen.append(self.target_encoder)
        for module in frozen:
            module.requires_grad_(False).eval()
        return frozen

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.frozen:
            module.eval()  # BatchNorm statistics of frozen parts never move
        return self

    # -- one optimisation step ------------------------------------------------------------------------
    def _optimizer_names(self) -> list[str]:
        names = ["generator"]
        if self.discriminator is not None:
            names.append("discriminator")
        if self.latent_discriminator is not None:
            names.append("latent_discriminator")
        return names

    def _adversarial_terms(self, discriminator, fake, real, cfg_weight, fm_weight, prefix, logs):
        """Generator-side GAN (+ feature matching) terms of one discriminator, with D frozen meanwhile."""
        discriminator.requires_grad_(False)
        fake_logits, fake_features = discriminator(fake)
        logs[f"{prefix}adv_g"] = generator_loss(fake_logits)
        total = cfg_weight * logs[f"{prefix}adv_g"]
        if fm_weight > 0:
            with torch.no_grad():
                _, real_features = discriminator(real)
            logs[f"{prefix}feature_matching"] = feature_matching_loss(fake_features, real_features)
            total = total + fm_weight * logs[f"{prefix}feature_matching"]
        discriminator.requires_grad_(True)
        return total

    def _discriminator_loss(self, discriminator, fake, real, mask) -> torch.Tensor:
        cfg = self.config["loss"]
        real = real.detach().requires_grad_(cfg["gp_coef"] > 0)
        real_logits, _ = discriminator(real)
        fake_logits, _ = discriminator(fake.detach())
        return discriminator_loss(
            real_logits, fake_logits, real, mask, cfg["gp_coef"], cfg["mask_as_fake_target"]
        )

    def training_step(self, batch, batch_idx):
        image, mask = batch["image"], batch["mask"]
        cfg = self.config["loss"]
        opts = self.optimizers()
        opt = dict(zip(self._optimizer_names(), opts if isinstance(opts, list) else [opts]))

        z = self.network.refine(self.network.encode(image, mask))
        logs: dict[str, torch.Tensor] = {}
        total = image.new_zeros(())
        z_flat = target = None
        if self.use_latent:
            with torch.no_grad():
                target = features_to_tensor(self.target_encoder(image))
            logs["latent_l1"] = latent_l1(z, target)
            total = total + cfg["latent_weight"] * logs["latent_l1"]
            if self.latent_discriminator is not None:
                z_flat = features_to_tensor(z)
                total = total + self._adversarial_terms(
                    self.latent_discriminator, z_flat, target,
                    cfg["latent_adversarial"], cfg["latent_feature_matching"], "latent_", logs,
                )  # fmt: skip
        pred = None
        if self.use_pixel:  # only pixel-side losses ever run the decoder
            pred = self.network.decode(z)
            logs["l1"] = masked_l1(pred, image, mask, cfg["l1_known"], cfg["l1_missing"])
            total = total + logs["l1"]
            if self.perceptual is not None:
                logs["perceptual"] = self.perceptual(pred, image)
                total = total + cfg["perceptual"] * logs["perceptual"]
            if self.discriminator is not None:
                total = total + self._adversarial_terms(
                    self.discriminator, pred, image, cfg["adversarial"], cfg["feature_matching"], "", logs
                )

        manual_step(self, opt["generator"], total)
        self.lr_schedulers().step()

        if self.discriminator is not None and pred is not None:
            d_loss = self._discriminator_loss(self.discriminator, pred, image, mask)
            manual_step(self, opt["discriminator"], d_loss, raw=True)
            logs["adv_d"] = d_loss.detach()
        if self.latent_discriminator is not None and z_flat is not None:
            d_loss = self._discriminator_loss(self.latent_discriminator, z_flat, target, mask)
            manual_step(self, opt["latent_discriminator"], d_loss, raw=True)
            logs["latent_adv_d"] = d_loss.detach()

        self.log_dict({f"train/{k}": v.detach() for k, v in logs.items()}, prog_bar=False)
        self.log("train/loss", total.detach(), prog_bar=True)
        return {"loss": total.detach()}

    def validation_step(self, batch, batch_idx):
        """One validation pair inpainted; training/validation.py's callback scores it (data.val)."""
        from latentpaint.training.validation import predict

        return predict(self.network, batch["image"], batch["mask"])

    def configure_optimizers(self):
        o, steps = self.config["optim"], self.config["trainer"]["max_steps"]
        params = [p for p in self.network.parameters() if p.requires_grad]
        opt_g, schedule = adam_with_schedule(params, o["lr"], o, steps)
        optimizers = [opt_g]
        for disc in (self.discriminator, self.latent_discriminator):
            if disc is not None:  # discriminators keep a constant rate (LaMa)
                optimizers.append(torch.optim.Adam(disc.parameters(), lr=o["lr_d"], betas=tuple(o["betas"])))
        return optimizers, [{"scheduler": schedule, "interval": "step"}]


def load_autoencoder_state(path: str) -> dict:
    """The stage-1 generator weights from a `latentpaint train autoencoder` checkpoint."""
    config, state = read_training_checkpoint(path)
    if config.get("stage") != "autoencoder":
        raise LatentpaintError(
            f"{path} is not a stage-1 autoencoder checkpoint (stage: {config.get('stage')})"
        )
    return strip_prefix(state, "generator.")


__all__ = ["InpaintingSystem", "init_from_autoencoder", "load_autoencoder_state"]
