"""A real SIGKILL in the middle of stage-2 training, then `--resume`: the result equals an unbroken run.

The killed run is a `python -m latentpaint train` subprocess; nothing in the product is slowed down for
the test. The kill lands right after the step-K checkpoint pair (`stepK.ckpt`, then `last.ckpt`) is on
disk, when the next write is still K training steps away, and the run has N - K steps left to do.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from latentpaint.inference.checkpoints import load_torch_file
from latentpaint.training.runner import train

pytestmark = pytest.mark.slow

STEPS, EVERY = 6, 2  # the kill comes after step 2: four steps are left for the resumed run
START_TIMEOUT_S = 60  # imports + model build + two steps, on a busy two-core machine


def child_env() -> dict[str, str]:
    # the same thread count as this process: CPU kernels may sum in another order with more threads
    return {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}


def run_cli(log: Path, *args: str) -> subprocess.Popen:
    """`latentpaint train inpainting ARGS` in a subprocess, its output going to `log` (a pipe could fill up)."""
    cmd = [sys.executable, "-m", "latentpaint", "train", "inpainting", *args]
    with open(log, "w") as out:
        return subprocess.Popen(cmd, env=child_env(), stdout=out, stderr=subprocess.STDOUT)


def tail(log: Path) -> str:
    return log.read_text()[-3000:]


def partial_files(folder: Path) -> list[str]:
    # atomic_write's temp names start with a dot, which shell-style globs would skip
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def autoencoder_ckpt(tmp_path_factory, tiny) -> str:
    out = tmp_path_factory.mktemp("ae")
    return str(train(tiny.config("autoencoder", "trainer.max_steps=2"), out))


@pytest.fixture
def saves(monkeypatch) -> list[tuple[str, int]]:
    """(file name, global step) of every checkpoint the in-process runner writes, in order."""
    import latentpaint.training.runner as runner

    written: list[tuple[str, int]] = []

    class RecordingIO(runner.AtomicCheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
            super().save_checkpoint(checkpoint, path, storage_options)
            written.append((Path(path).name, checkpoint["global_step"]))

    monkeypatch.setattr(runner, "AtomicCheckpointIO", RecordingIO)
    return written


def test_sigkill_then_resume_equals_uninterrupted_run(autoencoder_ckpt, tmp_path, saves, tiny):
    sets = [f"trainer.max_steps={STEPS}", f"trainer.checkpoint_every_n_steps={EVERY}"]

    # the reference: one unbroken run, in this process, which also shows when checkpoints are written
    straight = train(tiny.config("latent-control", *sets, f"autoencoder={autoencoder_ckpt}"), tmp_path / "a")
    # every EVERY steps Lightning writes stepK.ckpt, then last.ckpt; the runner saves last.ckpt once more at
    # the end
    expected = [
        (name, k) for k in range(EVERY, STEPS + 1, EVERY) for name in (f"step{k:06d}.ckpt", "last.ckpt")
    ]
    assert saves == [*expected, ("last.ckpt", STEPS)]

    out = tmp_path / "b"
    checkpoints = out / "checkpoints"
    last = checkpoints / "last.ckpt"
    process = run_cli(
        tmp_path / "killed.log",
        "--config", "latent-control", "--autoencoder", autoencoder_ckpt, "--out", str(out),
        "--set", *tiny.sets(*sets),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        # last.ckpt only ever appears by an atomic rename, so once it exists it is complete; the first one
        # is written at step EVERY, right after stepEVERY.ckpt
        while not last.exists():
            assert process.poll() is None, f"training exited early:\n{tail(tmp_path / 'killed.log')}"
            assert time.monotonic() < deadline, f"no checkpoint within {START_TIMEOUT_S} s"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)

    assert partial_files(checkpoints) == []
    present = sorted(checkpoints.glob("*.ckpt"))
    steps = {path.name: load_torch_file(path)["global_step"] for path in present}  # every file loads
    killed_at = steps["last.ckpt"]
    assert EVERY <= killed_at < STEPS and killed_at % EVERY == 0, steps
    # top-1 of the step checkpoints is kept, and last.ckpt was current when the process died
    assert steps == {f"step{killed_at:06d}.ckpt": killed_at, "last.ckpt": killed_at}

    # `--resume` with no value takes <out>/checkpoints/last.ckpt; the config comes from the checkpoint
    resumed = run_cli(tmp_path / "resumed.log", "--out", str(out), "--resume")
    try:
        resumed.wait(timeout=120)
    finally:
        if resumed.poll() is None:
            resumed.kill()
            resumed.wait(timeout=30)
    assert resumed.returncode == 0, tail(tmp_path / "resumed.log")
    assert partial_files(checkpoints) == []

    a, b = load_torch_file(straight), load_torch_file(last)
    assert b["global_step"] == a["global_step"] == STEPS
    assert load_torch_file(checkpoints / f"step{STEPS:06d}.ckpt")["global_step"] == STEPS
    assert max_difference(a["state_dict"], b["state_dict"]) <= 1e-6
