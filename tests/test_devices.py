"""Device bugs found without a GPU: every preset on fake CUDA tensors, a whole training step on the meta
device under a dispatch mode that flags host syncs, host copies and CPU tensors, the callbacks' sync
points, and static checks of the hot-path modules' source."""

from __future__ import annotations

import ast
import copy
import math
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode

from latentpaint.losses import adversarial
from latentpaint.models.apply import network_multiple, prepared_inputs
from latentpaint.models.network import PREFILLS, InpaintingNetwork
from latentpaint.training.callbacks import FiniteLossGuard, StepTimer
from latentpaint.training.presets import list_presets, load_preset

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "latentpaint"
STAGE2 = [p for p in list_presets() if load_preset(p).stage == "inpainting"]
aten = torch.ops.aten
FACTORIES = {
    aten.empty.memory_format, aten.empty_strided.default, aten.zeros.default, aten.ones.default,
    aten.full.default, aten.arange.default, aten.arange.start, aten.arange.start_step,
    aten.rand.default, aten.randn.default, aten.randint.default, aten.randint.low,
    aten.scalar_tensor.default, aten.linspace.default, aten.eye.default, aten.lift_fresh.default,
}  # fmt: skip
cuda_build = pytest.mark.skipif(not torch.backends.cuda.is_built(), reason="torch without CUDA support")


_BUILT: dict[str, tuple] = {}


def built(preset: str, tiny):
    """(config, system, batch) of a tiny `preset`, built once per session and copied for each test."""
    if preset not in _BUILT:
        _BUILT[preset] = tiny.system(preset, "trainer.gradient_clip_val=1")
    return copy.deepcopy(_BUILT[preset])


# -- fake CUDA: every tensor a forward pass makes is on its input's device ------------------------------
class FakeCuda:
    """`system` moved to fake CUDA tensors (no GPU needed with a CUDA build of torch): a CPU tensor mixed
    into a forward pass raises "found two different devices"; a host copy (`.numpy()`) raises too."""

    def __init__(self):
        self.mode = FakeTensorMode(allow_non_fake_inputs=True)

    def __enter__(self):
        self.overwrite = torch.__future__.get_overwrite_module_params_on_conversion()
        torch.__future__.set_overwrite_module_params_on_conversion(True)
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        self.mode.__exit__(*exc)
        torch.__future__.set_overwrite_module_params_on_conversion(self.overwrite)


@cuda_build
@pytest.mark.parametrize("preset", STAGE2)
def test_every_preset_computes_its_losses_on_fake_cuda(preset, tiny):
    _, system, batch = built(preset, tiny)
    with FakeCuda():
        system = system.to("cuda").train()
        on_cpu = [
            n for n, t in [*system.named_parameters(), *system.named_buffers()] if t.device.type != "cuda"
        ]
        assert not on_cpu, on_cpu[:3]
        batch = {k: v.to("cuda") for k, v in batch.items()}
        logs: dict = {}
        total, judged = system.generator_loss(batch["image"], batch["mask"], logs, batch.get("prefill"))
        assert total.device.type == "cuda" and all(v.device.type == "cuda" for v in logs.values())
        for name, (fake, real) in judged.items():  # each discriminator's loss (R1 is a backward pass:
            d = getattr(system, name)  # fake CUDA has no device for it; the meta step below runs it)
            (real_logits, _), (fake_logits, _) = d(real.detach()), d(fake.detach())
            loss = adversarial.discriminator_loss(real_logits, fake_logits, real, batch["mask"], 0.0, True)
            assert loss.device.type == "cuda"


@cuda_build
@pytest.mark.parametrize("prefill", PREFILLS)
@pytest.mark.parametrize("mask_mode", ["alpha", "control"])
def test_inference_inputs_and_forward_on_fake_cuda(prefill, mask_mode):
    """models/apply.py's upload (host prefill on the uint8 image included) and the forward pass."""
    output = "residual" if prefill != "none" else "direct"
    network = InpaintingNetwork("thesis", mask_mode, prefill=prefill, output=output).eval()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (37, 45, 3), dtype=np.uint8)
    mask = np.zeros((37, 45), np.float32)
    mask[5:20, 10:30] = 1
    kind = network.host_prefill
    with FakeCuda(), torch.no_grad():
        network = network.to("cuda")
        x, m, prefilled = prepared_inputs(image, mask, network_multiple(network), "cuda", False, kind)
        assert (prefilled is None) == (kind is None)
        out = network(x, m) if prefilled is None else network(x, m, prefilled=prefilled)
        assert out.device.type == "cuda" and out.shape == x.shape


# -- a whole training step on the meta device, watched for host work ---------------------------------------
class HostWork(TorchDispatchMode):
    """Records what would stall or break a GPU step: reading a device scalar on the host (`.item()`,
    `float(t)`, `if t:`), copying a device tensor to the CPU, and making CPU tensors of more than one
    element (CPU scalars, as optimizer step counters, are fine). Reads return `read_value` so the step
    goes on."""

    def __init__(self, read_value: float = 0.0):
        super().__init__()
        self.hits: list[str] = []
        self.read_value = read_value

    def _hit(self, what: str) -> None:
        frames = [
            f for f in traceback.extract_stack() if "latentpaint" in f.filename and "tests" not in f.filename
        ]
        where = ", ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in frames[-3:])
        self.hits.append(f"{what} at {where or '(outside latentpaint)'}")

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [a for a in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
        off_host = {t.device.type for t in tensors} - {"cpu"}
        if func is aten._local_scalar_dense.default and off_host:
            self._hit(f"host read of a {sorted(off_host)} scalar")
            return self.read_value if tensors[0].is_floating_point() else int(self.read_value)
        to_host = (func is aten._to_copy.default and str(kwargs.get("device", "")) == "cpu") or (
            func is aten.copy_.default and args[0].device.type == "cpu"
        )
        if to_host and off_host:  # before running it: a meta tensor has no data to copy
            self._hit(f"{func} copied a {sorted(off_host)} tensor to the CPU")
        out = func(*args, **kwargs)
        outs = [o for o in torch.utils._pytree.tree_leaves(out) if isinstance(o, torch.Tensor)]
        if func in FACTORIES and any(o.device.type == "cpu" and o.numel() > 1 for o in outs):
            self._hit(f"{func} made a CPU tensor")
        return out


class StubOptimizer:
    """What manual_step needs of a LightningOptimizer; stepping calls the hook Lightning would call."""

    def __init__(self, system, params):
        self.system, self.params, self.optimizer, self.steps = system, list(params), self, 0

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def step(self, closure=None) -> None:
        self.system.on_before_optimizer_step(self)
        self.steps += 1


def drive_without_trainer(system) -> list[StubOptimizer]:
    """Lets `system.training_step` run without Lightning (the meta device has no Trainer)."""
    parts = [system.network, *system.discriminators().values()]
    optimizers = [StubOptimizer(system, [p for p in part.parameters() if p.requires_grad]) for part in parts]
    system.optimizers = lambda: optimizers if len(optimizers) > 1 else optimizers[0]
    system.lr_schedulers = lambda: type("Schedule", (), {"step": lambda self: None})()
    system.manual_backward = lambda loss: loss.backward()
    system.log = system.log_dict = lambda *args, **kwargs: None

    def clip(optimizer, gradient_clip_val, gradient_clip_algorithm):
        torch.nn.utils.clip_grad_norm_(optimizer.params, gradient_clip_val)

    system.clip_gradients = clip
    return optimizers


@pytest.mark.parametrize("preset", STAGE2)
def test_a_training_step_does_no_host_work(preset, tiny):
    """generator loss, backward, clipping, every discriminator's loss with R1 and its backward, on meta
    tensors: nothing reads the device, copies to the host or makes CPU tensors."""
    _, system, batch = built(preset, tiny)
    system = system.to("meta").train()
    optimizers = drive_without_trainer(system)
    batch = {k: torch.empty_like(v, device="meta") for k, v in batch.items()}
    with HostWork() as watch:
        out = system.training_step(batch, 0)
    assert out["loss"].device.type == "meta"
    assert all(o.steps == 1 for o in optimizers)
    assert not watch.hits, "\n".join(watch.hits)


def test_the_watch_sees_what_it_is_for():
    x = torch.ones(4, device="meta")
    with HostWork() as watch:
        float(x.sum())
        torch.zeros(8)
        torch.tensor(3.0)  # a CPU scalar: allowed
    assert len(watch.hits) == 2, watch.hits
    network = InpaintingNetwork("thesis", "control", prefill="telea").to("meta")
    with HostWork() as watch, pytest.raises(Exception):  # noqa: B017 - a meta tensor has no data to copy
        network.masked_image(
            torch.empty(1, 3, 32, 32, device="meta"), torch.empty(1, 1, 32, 32, device="meta")
        )
    assert watch.hits  # the host fill inside the network is exactly what training no longer does


# -- callbacks read the device at sync points only ---------------------------------------------------------
class StubTrainer:
    def __init__(self, step: int, log_every: int = 5, max_steps: int = 100):
        self.global_step, self.log_every_n_steps, self.max_steps = step, log_every, max_steps
        self.should_stop, self.world_size, self.is_global_zero = False, 1, True


class MetaModule:
    device = torch.device("meta")

    def __init__(self):
        self.logged: list[int] = []

    def log_dict(self, values, **kwargs):
        self.logged.append(len(values))


def test_callbacks_wait_for_a_device_at_sync_points_only(tmp_path):
    module, guard, timer = MetaModule(), FiniteLossGuard(every=(7,)), StepTimer(tmp_path, 2, every=(7,))
    reads = []
    for step in range(1, 11):
        trainer = StubTrainer(step)
        loss = torch.empty((), device="meta")
        with HostWork(read_value=-1.0) as watch:  # -1: no bad step recorded
            timer.on_train_batch_start(trainer, module, None, step)
            timer.on_train_batch_end(trainer, module, {"loss": loss}, None, step)
            guard.on_train_batch_end(trainer, module, {"loss": loss}, None, step)
        if watch.hits:
            reads.append(step)
    assert reads == [5, 7, 10]  # log steps (5, 10) and the guard's checkpoint interval (7)
    assert module.logged == [2, 2, 2] and len(timer.step_times) == 10  # a mean per window, every step timed


def test_the_loss_guard_names_the_first_bad_step_on_a_device():
    guard, module = FiniteLossGuard(), MetaModule()
    module.device = torch.device("cpu")
    with pytest.raises(Exception, match="nan at step 3"):
        for step, value in enumerate([1.0, 2.0, math.nan, 4.0], start=1):
            guard.on_train_batch_end(StubTrainer(step), module, {"loss": torch.tensor(value)}, None, step)

    guard = FiniteLossGuard()  # the device path, on CPU tensors: reads at sync points only
    module.device = torch.device("meta")  # says "asynchronous device"; the tensors are CPU ones
    for step, value in enumerate([1.0, math.inf, 3.0, 4.0], start=1):
        trainer = StubTrainer(step, log_every=4)
        if step < 4:
            guard.on_train_batch_end(trainer, module, {"loss": torch.tensor(value)}, None, step)
    with pytest.raises(Exception, match="inf at step 2"):
        guard.on_train_batch_end(StubTrainer(4, log_every=4), module, {"loss": torch.tensor(4.0)}, None, 4)


# -- static checks of the hot path -------------------------------------------------------------------------
HOT_PATH = [
    *(p for p in sorted((PACKAGE / "models").glob("*.py")) if p.name != "apply.py"),  # apply.py: host side
    *sorted((PACKAGE / "losses").glob("*.py")),
    *(PACKAGE / "training" / f"{name}.py" for name in ("inpainting", "autoencoder", "optim", "callbacks")),
]
HOST_CALLS = {"cpu", "numpy", "item", "tolist", "synchronize"}
CASTS = {"float", "int", "bool"}
TENSOR_FACTORIES = {
    "tensor",
    "zeros",
    "ones",
    "empty",
    "full",
    "arange",
    "linspace",
    "eye",
    "rand",
    "randn",
    "randint",
}
# (file, function) -> why host work is right there
ALLOWED = {
    (
        "prefill.py",
        "host_fill_tensor",
    ): "the tensor convenience path (tests, visualize, refinement); training "
    "and inference pass the host prefill in as `prefilled`",
    ("callbacks.py", "at_sync_point"): "casts of Python numbers",
    ("callbacks.py", "StepTimer.on_train_batch_end"): "synchronizes at sync points only",
    ("callbacks.py", "LogStepProgressBar.on_train_batch_end"): "reads the loss at sync points only",
    (
        "callbacks.py",
        "FiniteLossGuard.on_train_batch_end",
    ): "CPU losses every step, device flags at sync points",
    ("callbacks.py", "FiniteLossGuard._stop"): "raising the error",
    ("callbacks.py", "NetworkEMA.on_load_checkpoint"): "once, when a run resumes",
}


def _functions(tree: ast.Module):
    """(qualified name, node) of every top-level function and method (Class.method)."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            yield node.name, node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    yield f"{node.name}.{item.name}", item


def host_work_in(path: Path, root: Path = PACKAGE) -> list[str]:
    """`file:line function: what` for each host call, cast of a non-constant or CPU tensor factory."""
    found = []
    for name, function in _functions(ast.parse(path.read_text(encoding="utf-8"))):
        if name.endswith("__init__") or (path.name, name) in ALLOWED:
            continue  # building modules runs once, on the host, before anything moves to a device
        for node in ast.walk(function):
            if not isinstance(node, ast.Call):
                continue
            f, what = node.func, None
            if isinstance(f, ast.Attribute) and f.attr in HOST_CALLS:
                what = f".{f.attr}()"
            elif (
                isinstance(f, ast.Name)
                and f.id in CASTS
                and node.args
                and not isinstance(node.args[0], ast.Constant)
            ):
                what = f"{f.id}(...)"
            elif (
                isinstance(f, ast.Attribute)
                and f.attr in TENSOR_FACTORIES
                and isinstance(f.value, ast.Name)
                and f.value.id == "torch"
                and not any(k.arg == "device" for k in node.keywords)
            ):
                what = f"torch.{f.attr}(...) without device="
            if what:
                found.append(f"{path.relative_to(root)}:{node.lineno} {name}: {what}")
    return found


def test_hot_path_modules_do_no_host_work():
    found = [hit for path in HOT_PATH for hit in host_work_in(path)]
    assert not found, (
        "\n".join(found) + "\n(allow-list a function in ALLOWED with the reason, if it is right)"
    )


def test_the_static_check_sees_host_work(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "import torch\n"
        "def forward(x):\n    y = x.sum().item()\n    return torch.zeros(3) + float(x.mean()) + x.cpu()\n"
        "class M:\n    def __init__(self):\n        self.w = torch.zeros(3)\n"
        "    def fine(self, x):\n        return torch.zeros(3, device=x.device) + float(2)\n"
    )
    hits = host_work_in(source, tmp_path)
    assert len(hits) == 4 and all(h.startswith("m.py:") and " forward: " in h for h in hits), hits


def test_fft_inputs_are_float32():
    """cuFFT in half precision takes powers of two only: every forward FFT gets a `.float()` input."""
    tree = ast.parse((PACKAGE / "models" / "ffc.py").read_text(encoding="utf-8"))
    calls = [
        n for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in ("rfftn", "rfft2", "fftn", "fft2")
    ]  # fmt: skip
    assert calls
    for call in calls:
        arg = call.args[0]
        assert isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute) and arg.func.attr == "float"


def test_training_logs_nothing_to_the_progress_bar():
    """A value logged with prog_bar=True is turned into a Python number after every batch (a sync per step):
    the bar reads the loss itself at log steps (LogStepProgressBar)."""
    for path in HOT_PATH:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("log", "log_dict")
            ):
                bar = [k for k in node.keywords if k.arg == "prog_bar"]
                assert not (bar and isinstance(bar[0].value, ast.Constant) and bar[0].value.value), (
                    f"{path.name}:{node.lineno} logs to the progress bar"
                )
