"""What breaks or silently trains wrongly on a GPU, reproduced on the CPU: DDP with discriminators, fp16's
loss scaler with gradient clipping and with the raw discriminator step, EMA scope, CUDA-only settings."""

from __future__ import annotations

import os

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.plugins.precision import MixedPrecision
from torch.utils.data import DataLoader, Dataset

from latentpaint.errors import LatentpaintError
from latentpaint.inference.checkpoints import load_network, load_torch_file
from latentpaint.training import runner
from latentpaint.training.callbacks import NetworkEMA
from latentpaint.training.config import RunConfig
from latentpaint.training.inpainting import build_inpainting_system
from latentpaint.training.presets import list_presets, load_preset
from latentpaint.training.runner import build_trainer, train

STAGE2 = [p for p in list_presets() if load_preset(p).stage == "inpainting"]


class FixedBatches(Dataset):
    def __init__(self, batch: dict, n: int):
        self.batch, self.n = batch, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return self.batch


@pytest.fixture
def process_group():
    """Leaves no process group and no DDP environment variables behind for the tests after this one."""
    before = dict(os.environ)
    yield
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    for key in set(os.environ) - set(before):
        del os.environ[key]
    os.environ.update(before)


# -- DDP: the GAN presets' two backward passes per step -------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("preset", STAGE2)
def test_every_preset_trains_under_ddp(preset, tiny, tmp_path, process_group):
    """One gloo process with strategy=ddp, as `--strategy ddp` on a cluster: each backward of a GAN step
    leaves the other network's parameters unused, which DDP refuses unless it is told to look for them."""
    sets = ["trainer.strategy=ddp", "trainer.max_steps=2", "trainer.checkpoint_every_n_steps=100"]
    # the perceptual network is frozen (nothing for DDP to reduce) and costs most of lama-full's time here
    config, system, batch = tiny.system(preset, *sets, "loss.perceptual=0")
    trainer = build_trainer(config, tmp_path)
    trainer.fit(system, DataLoader(FixedBatches(batch, 2), batch_size=None))
    assert trainer.global_step == 2 and torch.distributed.get_backend() == "gloo"
    # the graph walk costs every backward pass: only GAN runs get it
    assert config.has_discriminators is bool(system.discriminators())
    assert trainer.strategy._ddp_kwargs.get("find_unused_parameters", False) is config.has_discriminators


# -- fp16: clipping must see unscaled gradients -----------------------------------------------------------
def _adam_grad_norms(monkeypatch) -> list[float]:
    """Records the gradient norm each generator Adam step applies (after the scaler has unscaled it)."""
    seen: list[float] = []
    step = torch.optim.Adam.step

    def record(optimizer) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if len(grads) > 4:  # the generator (a discriminator has few tensors: not in these presets anyway)
            seen.append(float(torch.linalg.vector_norm(torch.stack([g.float().norm() for g in grads]))))

    def recording(self, closure=None):
        if closure is None:  # the scaler's step: Lightning ran the closure (and the clip) before
            record(self)
            return step(self)

        def then_record():  # 32-true: Lightning's hooks, the clip among them, run inside the closure
            result = closure()
            record(self)
            return result

        return step(self, then_record)

    monkeypatch.setattr(torch.optim.Adam, "step", recording)
    return seen


@pytest.mark.parametrize("precision", ["32-true", "16-mixed"])
def test_gradient_clipping_sees_unscaled_fp16_gradients(precision, tiny, monkeypatch):
    """Lightning turns 16-mixed into bf16 on a CPU; an explicit fp16 plugin with a GradScaler is the only
    way to exercise the scaler here. Clipping before Lightning unscaled gave 1e-3 / scale."""
    clip = 1e-3  # far below the true norm, so every step clips
    _, system, batch = tiny.system("latent-control", f"trainer.gradient_clip_val={clip}")
    seen = _adam_grad_norms(monkeypatch)
    plugins = []
    if precision == "16-mixed":
        plugins = [MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=2.0**10))]
    trainer = L.Trainer(
        max_steps=3, accelerator="cpu", devices=1, plugins=plugins, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(system, DataLoader(FixedBatches(batch, 3), batch_size=None))
    assert seen, "no generator step was applied"
    assert all(0.5 * clip < norm <= clip * 1.01 for norm in seen), seen


def test_fp16_is_refused_for_both_kinds_of_discriminator(tiny):
    """A discriminator's raw step has no loss scaler: the run config (training/config.py) refuses 16-mixed
    with a pixel or a latent discriminator, from the command line and from a saved config or checkpoint,
    before anything is built; runs without one take it."""
    for preset in ("latent-adversarial", "lama-full"):
        assert tiny.config(preset).has_discriminators
        with pytest.raises(LatentpaintError, match="not 16-mixed"):
            tiny.config(preset, "trainer.precision=16-mixed")
        saved = tiny.config(preset).to_dict()
        saved["trainer"]["precision"] = 16  # as a YAML file may say it
        with pytest.raises(LatentpaintError, match="not 16-mixed"):
            RunConfig.read(saved)
    fp16 = tiny.config("latent-control", "trainer.precision=16-mixed")
    assert fp16.trainer.precision == "16-mixed" and not fp16.has_discriminators


def test_a_raw_discriminator_step_refuses_a_loss_scaler(tiny):
    from latentpaint.training.optim import manual_step

    _, system, _ = tiny.system("latent-adversarial")

    class Plugin:
        scaler = object()

    class Trainer:
        precision_plugin = Plugin()

    system._trainer = Trainer()
    system.manual_backward = lambda loss: loss.backward()
    optimizer = torch.optim.Adam(system.latent_discriminator.parameters())
    loss = sum(p.sum() for p in system.latent_discriminator.parameters())
    with pytest.raises(LatentpaintError, match="loss scaler"):
        manual_step(
            system,
            type("Wrapped", (), {"zero_grad": optimizer.zero_grad, "optimizer": optimizer})(),
            loss,
            raw=True,
        )
    system._trainer = None


# -- EMA of the network only ------------------------------------------------------------------------------
def test_ema_averages_the_network_only_with_lightnings_numbers(tmp_path, monkeypatch, tiny):
    _, system, _ = tiny.system("latent-adversarial")
    ema = NetworkEMA(0.5)
    ema.setup(None, system, "fit")
    assert sum(p.numel() for p in ema._average_model.module.parameters()) == sum(
        p.numel() for p in system.network.parameters()
    )  # no discriminator, target encoder or perceptual network copied

    config, _, _ = tiny.system("latent-control", "optim.ema_decay=0.5", "trainer.max_steps=3")

    stage1 = config.model.spec.autoencoder_generator().state_dict()
    monkeypatch.setattr(runner, "build_system", lambda c, restoring=False: build_inpainting_system(c, stage1))
    ours = load_torch_file(train(config, tmp_path / "ours"))
    monkeypatch.setattr(runner, "NetworkEMA", lambda decay: EMAWeightAveraging(decay=decay))
    lightnings = load_torch_file(train(config, tmp_path / "lightning"))
    network_keys = [k for k in lightnings["state_dict"] if k.startswith("network.")]
    assert all(torch.equal(ours["state_dict"][k], lightnings["state_dict"][k]) for k in network_keys)
    assert set(ours["state_dict"]) == set(lightnings["state_dict"])  # the target encoder etc. still saved
    assert set(ours["current_model_state"]) == set(ours["state_dict"])
    assert torch.equal(
        load_network(tmp_path / "ours" / "checkpoints" / "last.ckpt").state_dict()[
            "generator.model.5.conv1.ffc.convl2l.weight"
        ],
        ours["state_dict"]["network.generator.model.5.conv1.ffc.convl2l.weight"],
    )


def test_ema_run_resumed_equals_uninterrupted(tmp_path, monkeypatch, tiny):
    sets = ["optim.ema_decay=0.5", "trainer.max_steps=4", "trainer.checkpoint_every_n_steps=2"]
    config = tiny.config("latent-control", *sets, size=32)
    stage1 = config.model.spec.autoencoder_generator().state_dict()
    monkeypatch.setattr(runner, "build_system", lambda c, restoring=False: build_inpainting_system(c, stage1))
    straight = load_torch_file(train(config, tmp_path / "a"))

    class Stop(Exception):
        pass

    class StopAt(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            if trainer.global_step == 2:
                raise Stop

    original = runner.FiniteLossGuard
    monkeypatch.setattr(runner, "FiniteLossGuard", lambda every=(): StopAt())
    with pytest.raises(Stop):
        train(config, tmp_path / "b")
    monkeypatch.setattr(runner, "FiniteLossGuard", original)
    resumed = load_torch_file(
        train(config, tmp_path / "b", resume=tmp_path / "b" / "checkpoints" / "step000002.ckpt")
    )
    for key in ("state_dict", "current_model_state"):
        worst = max((straight[key][k].float() - resumed[key][k].float()).abs().max() for k in straight[key])
        assert worst <= 1e-6, key


# -- settings that only a CUDA accelerator gets -----------------------------------------------------------
def test_tf32_and_cudnn_autotuning_only_on_cuda(tmp_path, tiny, monkeypatch):
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.benchmark
    trainer = build_trainer(tiny.config("latent-control"), tmp_path)
    assert not runner.speed_up_cuda(trainer)
    assert (torch.get_float32_matmul_precision(), torch.backends.cudnn.benchmark) == before

    from lightning.pytorch.accelerators import CUDAAccelerator

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", before[1])
    monkeypatch.setattr(type(trainer), "accelerator", property(lambda self: CUDAAccelerator()))
    try:
        assert runner.speed_up_cuda(trainer)
        assert torch.get_float32_matmul_precision() == "high" and torch.backends.cudnn.benchmark
    finally:
        torch.set_float32_matmul_precision(before[0])
