"""Training on a real CUDA device: no host sync inside a step, FFTs under autocast, every precision with the
scaler and clipping, DDP over NCCL, frozen parts untouched."""

from __future__ import annotations

import os

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from latentpaint.errors import LatentpaintError
from latentpaint.inference.checkpoints import load_torch_file
from latentpaint.models.ffc import FourierUnit
from latentpaint.models.network import InpaintingNetwork
from latentpaint.training import runner
from latentpaint.training.inpainting import build_inpainting_system
from latentpaint.training.runner import build_trainer, train

DEVICE = torch.device(os.environ.get("LATENTPAINT_GPU_TEST_DEVICE", "cuda"))  # as tests/gpu/conftest.py


def on_cuda() -> bool:
    return DEVICE.type == "cuda"


ACCELERATOR = "gpu" if on_cuda() else "cpu"
STEP_PRESETS = ["pixel-alpha", "latent-control", "recipe", "latent-adversarial", "lama-full"]


class FixedBatches(Dataset):
    def __init__(self, batch: dict, n: int):
        self.batch, self.n = batch, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return self.batch


class Stepper:
    """A LightningOptimizer stand-in around a real Adam: clipping hook, then the step, as Lightning does."""

    def __init__(self, system, params):
        self.system, self.optimizer = system, torch.optim.Adam([p for p in params if p.requires_grad])

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure=None) -> None:
        self.system.on_before_optimizer_step(self)
        self.optimizer.step()


def without_trainer(system) -> None:
    parts = [system.network, *system.discriminators().values()]
    optimizers = [Stepper(system, part.parameters()) for part in parts]
    system.optimizers = lambda: optimizers if len(optimizers) > 1 else optimizers[0]
    system.lr_schedulers = lambda: type("Schedule", (), {"step": lambda self: None})()
    system.manual_backward = lambda loss: loss.backward()
    system.log = system.log_dict = lambda *args, **kwargs: None
    system.clip_gradients = lambda optimizer, gradient_clip_val, gradient_clip_algorithm: (
        torch.nn.utils.clip_grad_norm_(
            [p for g in optimizer.optimizer.param_groups for p in g["params"]], gradient_clip_val
        )
    )


@pytest.mark.parametrize("preset", STEP_PRESETS)
def test_a_training_step_on_the_gpu_never_waits_for_the_host(preset, tiny, no_sync):
    _, system, batch = tiny.system(preset, "trainer.gradient_clip_val=1", size=64)
    system = system.to(DEVICE).train()
    without_trainer(system)
    batch = {k: v.to(DEVICE) for k, v in batch.items()}
    system.training_step(batch, 0)  # warm-up: cuDNN picks its kernels, the optimizers make their state
    with no_sync():
        out = system.training_step(batch, 1)
    assert torch.isfinite(out["loss"]).item()
    wrong = [
        n for n, p in [*system.named_parameters(), *system.named_buffers()] if p.device.type != DEVICE.type
    ]
    assert not wrong, wrong[:3]
    assert all(p.grad is None or p.grad.device == p.device for p in system.parameters())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fourier_units_compute_their_ffts_in_float32_under_autocast(dtype, monkeypatch):
    if not on_cuda() and dtype == torch.float16:
        pytest.skip("fp16 autocast is for CUDA")
    seen = []
    rfftn, irfftn = torch.fft.rfftn, torch.fft.irfftn
    monkeypatch.setattr(torch.fft, "rfftn", lambda x, *a, **k: seen.append(x.dtype) or rfftn(x, *a, **k))
    monkeypatch.setattr(torch.fft, "irfftn", lambda x, *a, **k: seen.append(x.dtype) or irfftn(x, *a, **k))
    torch.manual_seed(0)
    unit = FourierUnit(16, 16).to(DEVICE).eval()
    for h, w in [(32, 32), (48, 40), (33, 31)]:  # cuFFT in fp16 takes powers of two only
        x = torch.randn(2, 16, h, w, device=DEVICE).to(dtype)  # what a convolution gives under autocast
        with torch.no_grad():
            reference = unit(x.float())
            with torch.autocast(DEVICE.type, dtype=dtype):
                y = unit(x)
        assert y.dtype == dtype and torch.isfinite(y).all()
        assert float((y.float() - reference).norm() / reference.norm()) < 2e-2
    assert set(seen) == {torch.float32, torch.complex64}
    network = InpaintingNetwork("thesis", "control").to(DEVICE).eval()
    with torch.no_grad(), torch.autocast(DEVICE.type, dtype=dtype):
        out = network(torch.rand(1, 3, 136, 200, device=DEVICE), torch.zeros(1, 1, 136, 200, device=DEVICE))
    assert torch.isfinite(out).all()


def _grad_norms(monkeypatch) -> list[float]:
    """The gradient norm each generator Adam step applies (after unscaling and clipping)."""
    seen: list[float] = []
    step = torch.optim.Adam.step

    def record(optimizer):
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if len(grads) > 4:
            seen.append(float(torch.linalg.vector_norm(torch.stack([g.float().norm() for g in grads]))))

    def recording(self, closure=None):
        if closure is None:
            record(self)
            return step(self)

        def then_record():
            result = closure()
            record(self)
            return result

        return step(self, then_record)

    monkeypatch.setattr(torch.optim.Adam, "step", recording)
    return seen


@pytest.mark.parametrize(
    "preset, precision, clip",
    [
        ("latent-control", "32-true", None),
        ("latent-control", "bf16-mixed", None),
        ("latent-control", "16-mixed", 1e-3),  # the loss scaler with clipping (a CPU cannot run it)
        ("recipe", "bf16-mixed", None),  # Telea prefill from the loader, EMA, clipping
        ("lama-full", "bf16-mixed", None),  # pixel GAN + perceptual
        ("latent-adversarial", "32-true", None),
    ],
)
def test_training_runs_on_the_gpu(preset, precision, clip, tiny, tmp_path, monkeypatch):
    sets = [f"trainer.accelerator={ACCELERATOR}", f"trainer.precision={precision}", "trainer.max_steps=3"]
    if clip:
        sets.append(f"trainer.gradient_clip_val={clip}")
    config, system, _ = tiny.system(preset, *sets, size=64)
    stage1 = config.model.spec.autoencoder_generator().state_dict()
    monkeypatch.setattr(runner, "build_system", lambda c, restoring=False: build_inpainting_system(c, stage1))
    norms = _grad_norms(monkeypatch)
    ckpt = load_torch_file(train(config, tmp_path))
    assert ckpt["global_step"] == 3
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    if clip:  # clipped after unscaling: the applied norm is the clip value, not clip / scale
        assert norms and all(0.5 * clip < n <= 1.01 * clip for n in norms), norms
    if preset == "latent-control":  # the frozen stage-1 encoder and decoder did not move, not even BN stats
        g = system.network.generator
        frozen = [f"{i}." for i in range(g.n_encoder_layers)]
        for key, value in stage1.items():
            if key.split(".", 1)[1].startswith(tuple(frozen)):
                assert torch.equal(ckpt["state_dict"][f"network.generator.{key}"], value), key


def test_fp16_with_a_discriminator_is_refused(tiny):
    # where 16-mixed really is fp16: the run config refuses it before anything is built (training/config.py)
    with pytest.raises(LatentpaintError, match="bf16-mixed, not 16-mixed"):
        tiny.config("latent-adversarial", f"trainer.accelerator={ACCELERATOR}", "trainer.precision=16-mixed")


@pytest.fixture
def process_group():
    before = dict(os.environ)
    yield
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    for key in set(os.environ) - set(before):
        del os.environ[key]
    os.environ.update(before)


@pytest.mark.parametrize("preset", ["latent-control", "latent-adversarial"])
def test_ddp_on_one_gpu(preset, tiny, tmp_path, process_group):
    sets = [f"trainer.accelerator={ACCELERATOR}", "trainer.strategy=ddp", "trainer.max_steps=2"]
    config, system, batch = tiny.system(preset, *sets, "trainer.checkpoint_every_n_steps=100", size=64)
    trainer = build_trainer(config, tmp_path)
    trainer.fit(system, DataLoader(FixedBatches(batch, 2), batch_size=None))
    assert trainer.global_step == 2
    assert torch.distributed.get_backend() == ("nccl" if on_cuda() else "gloo")
