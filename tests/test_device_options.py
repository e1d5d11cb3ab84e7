"""`--device auto`, `Inpainter(dtype=..., compile=...)`, and how a long-running server and `predict` answer
a device that ran out of memory or failed for good (monkeypatched errors: no GPU needed)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from latentpaint import devices
from latentpaint.cli import main
from latentpaint.errors import LatentpaintError
from latentpaint.inference.inpainter import Inpainter
from latentpaint.models.network import InpaintingNetwork

ILLEGAL_ADDRESS = "CUDA error: an illegal memory access was encountered"


def _pair(size: int = 40):
    rng = np.random.default_rng(0)
    image = rng.integers(30, 220, (size, size + 7, 3), dtype=np.uint8)
    mask = np.zeros((size, size + 7), np.float32)
    mask[8:25, 10:30] = 1
    return image, mask


def test_auto_is_cuda_when_present_else_cpu(monkeypatch):
    assert devices.resolve_device("auto") == torch.device("cpu")  # the CI machine has no GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.auto_device() == torch.device("cuda") and devices.as_device("auto").type == "cuda"
    assert devices.as_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("command", ["predict", "evaluate", "serve"])
def test_device_defaults_to_auto(command, capsys):
    try:
        code = main([command, "--help"])
    except SystemExit as exc:
        code = exc.code
    assert code == 0 and "default: auto" in capsys.readouterr().out


def test_python_api_defaults_to_auto():
    inpainter = Inpainter(InpaintingNetwork("thesis", "control"))
    assert inpainter.device == devices.auto_device() and inpainter.dtype is None


def test_bf16_autocast_stays_close_to_fp32_and_keeps_known_pixels():
    torch.manual_seed(0)
    network = InpaintingNetwork("thesis", "control", prefill="pyramid", output="residual")
    image, mask = _pair()
    fp32 = Inpainter(network, device="cpu")(image, mask)
    bf16 = Inpainter(network, device="cpu", dtype="bf16")(image, mask)
    known = mask == 0
    assert np.array_equal(bf16[known], image[known])
    diff = np.abs(bf16.astype(int) - fp32.astype(int))[~known]
    assert diff.mean() < 2 and diff.max() <= 16
    with pytest.raises(LatentpaintError, match="dtype"):
        Inpainter(network, device="cpu", dtype="int8")


def test_compile_wraps_the_network_and_the_rest_still_reaches_it(monkeypatch):
    """torch.compile itself is checked on the GPU (tests/gpu); here: Inpainter uses what it returns, through
    the attribute forwarding torch's OptimizedModule has."""
    calls = []

    class Compiled(nn.Module):
        def __init__(self, module):
            super().__init__()
            self._orig_mod = module

        def forward(self, *args, **kwargs):
            calls.append(kwargs)
            return self._orig_mod(*args, **kwargs)

        def __getattr__(self, name):
            try:
                return super().__getattr__(name)
            except AttributeError:
                return getattr(self._orig_mod, name)

    asked = {}
    monkeypatch.setattr(torch, "compile", lambda module, **kw: asked.update(kw) or Compiled(module))
    network = InpaintingNetwork("thesis", "control", prefill="telea", output="residual")
    compiled = Inpainter(network, device="cpu", compile=True)
    image, mask = _pair()
    assert np.array_equal(compiled(image, mask), Inpainter(network, device="cpu")(image, mask))
    assert asked == {"dynamic": False} and calls and "prefilled" in calls[0]  # the host fill went in
    assert compiled.latent_damage(image, mask).shape == image.shape


# -- a server on a failing device ------------------------------------------------------------------------
def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def served():
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from latentpaint.server import create_app

    inpainter = Inpainter(InpaintingNetwork("thesis", "control"), device="cpu")
    with TestClient(create_app(inpainter), raise_server_exceptions=False, base_url="http://127.0.0.1") as c:
        image, mask = _pair()
        files = {"image": ("i.png", _png(image)), "mask": ("m.png", _png((mask * 255).astype(np.uint8)))}
        yield inpainter, c, lambda: c.post("/api/inpaint", files=files)


def test_out_of_memory_is_a_503_that_frees_the_cuda_cache(served, monkeypatch):
    inpainter, client, post = served
    real = inpainter.predict_array
    freed = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: freed.append(1))
    monkeypatch.setattr(
        inpainter,
        "predict_array",
        lambda *a: (_ for _ in ()).throw(torch.cuda.OutOfMemoryError("CUDA out of memory")),
    )
    response = post()
    assert response.status_code == 503 and "out of memory" in response.json()["detail"] and freed
    monkeypatch.setattr(inpainter, "predict_array", real)
    assert post().status_code == 200 and client.get("/api/health").status_code == 200


def test_a_failed_device_makes_the_server_unhealthy_not_a_stream_of_500s(served, monkeypatch):
    inpainter, client, post = served
    calls = []

    def broken(*args):
        calls.append(1)
        raise RuntimeError(ILLEGAL_ADDRESS)

    monkeypatch.setattr(inpainter, "predict_array", broken)
    first, second = post(), post()
    assert first.status_code == second.status_code == 503
    assert "restarted" in first.json()["detail"] and len(calls) == 1  # the second never touched the device
    health = client.get("/api/health")
    assert health.status_code == 503 and health.json()["status"] == "unhealthy"
    monkeypatch.setattr(inpainter, "predict_array", lambda *a: (_ for _ in ()).throw(ValueError("a bug")))


def test_other_errors_stay_500s(served, monkeypatch):
    inpainter, client, post = served
    monkeypatch.setattr(inpainter, "predict_array", lambda *a: (_ for _ in ()).throw(ValueError("a bug")))
    assert post().status_code == 500 and client.get("/api/health").status_code == 200


def test_predict_stops_at_the_first_device_failure(tmp_path, capsys, monkeypatch):
    from latentpaint.inference import cli

    for i in range(3):
        image, mask = _pair()
        Image.fromarray(image).save(tmp_path / f"{i}.png")
        Image.fromarray((mask * 255).astype(np.uint8)).save(tmp_path / f"{i}_mask.png")
    calls = []

    def failing(args):
        def predict(image, mask):
            calls.append(1)
            raise RuntimeError(ILLEGAL_ADDRESS)

        return predict

    monkeypatch.setattr(cli, "_predictor", failing)
    assert main(["predict", "--input", str(tmp_path), "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr()
    assert len(calls) == 1 and "stopping" in err.err and "wrote 0 of 3" in err.out


def test_device_failures_are_told_from_out_of_memory():
    assert devices.is_device_failure(RuntimeError(ILLEGAL_ADDRESS))
    assert devices.is_device_failure(RuntimeError("CUDA error: device-side assert triggered"))
    assert not devices.is_device_failure(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert not devices.is_device_failure(RuntimeError("shapes do not match"))
