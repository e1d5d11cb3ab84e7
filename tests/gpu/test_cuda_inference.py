"""Inference on a real CUDA device: the shipped model against the CPU, bf16 and torch.compile against fp32,
the server on the GPU, metrics on the GPU."""

from __future__ import annotations

import contextlib
import io
import os

import numpy as np
import pytest
import torch
from PIL import Image

from latentpaint.inference.inpainter import Inpainter
from latentpaint.models.network import InpaintingNetwork

DEVICE = torch.device(os.environ.get("LATENTPAINT_GPU_TEST_DEVICE", "cuda"))  # as tests/gpu/conftest.py
SIZES = [(257, 191), (64, 64), (513, 300)]  # odd sizes: padding and cropping


def on_cuda() -> bool:
    return DEVICE.type == "cuda"


def pair(h: int, w: int, seed: int = 0):
    from skimage.data import astronaut

    photo = astronaut()
    image = np.ascontiguousarray(np.resize(photo, (h, w, 3)) if h > 512 or w > 512 else photo[:h, :w])
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), np.float32)
    mask[h // 4 : h // 2, w // 5 : w // 2] = 1
    mask[rng.integers(0, h, 30), rng.integers(0, w, 30)] = 1
    return image, mask


@contextlib.contextmanager
def strict_fp32():
    """cuDNN's TF32 convolutions off (on by default): results then follow the CPU's to float rounding."""
    saved = torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved[0]
        torch.set_float32_matmul_precision(saved[1])


def grey_diff(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> tuple[int, float, float]:
    """(max, mean, share of equal pixels) of |a - b| where `where`."""
    d = np.abs(a.astype(int) - b.astype(int))[where]
    return (
        int(d.max(initial=0)),
        float(d.mean()) if d.size else 0.0,
        float((d == 0).mean()) if d.size else 1.0,
    )


@pytest.fixture(scope="module")
def shipped():
    return Inpainter.from_pretrained("default", device="cpu"), Inpainter.from_pretrained(
        "default", device=DEVICE
    )


def test_the_shipped_model_on_the_gpu_matches_the_cpu(shipped):
    cpu, gpu = shipped
    assert gpu.device.type == DEVICE.type and gpu.network.prefill == "telea"
    for h, w in SIZES:
        image, mask = pair(h, w)
        expected = cpu(image, mask)
        known = mask == 0
        with strict_fp32():
            strict = gpu(image, mask)
        assert np.array_equal(strict[known], image[known])
        worst, _, equal = grey_diff(strict, expected, ~known)
        assert worst <= 1 and equal >= 0.999, (h, w, worst, equal)
        worst, mean, _ = grey_diff(gpu(image, mask), expected, ~known)  # TF32 as shipped
        assert worst <= 3 and mean < 0.2, (h, w, worst, mean)


def test_optimized_bf16_and_damage_on_the_gpu(shipped):
    cpu, gpu = shipped
    optimized = Inpainter(gpu.network, device=DEVICE, optimize=True)
    bf16 = Inpainter(gpu.network, device=DEVICE, dtype="bf16")
    for h, w in SIZES:
        image, mask = pair(h, w, seed=1)
        hole = mask > 0
        reference = gpu(image, mask)
        worst, mean, _ = grey_diff(optimized(image, mask), reference, hole)
        assert worst <= 3 and mean < 0.2, ("optimized", h, w, worst, mean)
        low = bf16(image, mask)
        assert np.array_equal(low[~hole], image[~hole])
        _, mean, _ = grey_diff(low, reference, hole)
        assert mean < 2, ("bf16", h, w, mean)  # the bound: within 2 grey levels
        damage = grey_diff(gpu.latent_damage(image, mask), cpu.latent_damage(image, mask), np.ones_like(hole))
        assert damage[1] < 1, ("damage", h, w, damage)


@pytest.mark.slow  # compiling takes tens of seconds; benchmarks/gpu_check.sh times it in its inference part
def test_compiled_inpainter_matches_eager(shipped):
    _, gpu = shipped
    compiled = Inpainter(gpu.network, device=DEVICE, compile=True)
    image, mask = pair(128, 128)
    worst, mean, _ = grey_diff(compiled(image, mask), gpu(image, mask), mask > 0)
    assert worst <= 3 and mean < 0.2


def test_a_pyramid_prefill_network_on_the_gpu_matches_the_cpu():
    torch.manual_seed(0)
    network = InpaintingNetwork("thesis", "control", prefill="pyramid", output="residual")
    cpu = Inpainter(network, device="cpu")
    expected = {size: cpu(*pair(*size)) for size in SIZES}
    gpu = Inpainter(network, device=DEVICE)
    for size in SIZES:
        image, mask = pair(*size)
        with strict_fp32():
            worst, _, equal = grey_diff(gpu(image, mask), expected[size], mask > 0)
        assert worst <= 1 and equal >= 0.999, (size, worst, equal)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_server_on_the_gpu(shipped, monkeypatch):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from latentpaint.server import create_app

    _, gpu = shipped
    image, mask = pair(257, 191)
    files = {"image": ("i.png", _png(image)), "mask": ("m.png", _png((mask * 255).astype(np.uint8)))}
    with TestClient(create_app(gpu), raise_server_exceptions=False, base_url="http://127.0.0.1") as client:
        health = client.get("/api/health").json()
        assert health["status"] == "ok" and health["model"]["device"].startswith(DEVICE.type)
        response = client.post("/api/inpaint", files=files)
        assert response.status_code == 200
        served = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
        assert np.array_equal(served, gpu(image, mask))
        assert client.post("/api/latent-damage", files=files).status_code == 200
        real = gpu.predict_array
        oom = torch.cuda.OutOfMemoryError("CUDA out of memory (test)")
        monkeypatch.setattr(gpu, "predict_array", lambda *a: (_ for _ in ()).throw(oom))
        assert client.post("/api/inpaint", files=files).status_code == 503
        monkeypatch.setattr(gpu, "predict_array", real)
        assert client.post("/api/inpaint", files=files).status_code == 200


def test_metrics_on_the_gpu_match_the_cpu():
    from latentpaint.metrics.suite import MetricSuite

    g = torch.Generator().manual_seed(0)
    target = torch.rand(6, 3, 64, 80, generator=g)
    pred = (target + 0.1 * torch.rand(6, 3, 64, 80, generator=g)).clamp(0, 1)
    mask = (torch.rand(6, 1, 64, 80, generator=g) > 0.6).float()
    results = []
    for device in ("cpu", DEVICE):
        suite = MetricSuite(("ssim", "psnr", "fid"), "lama", None, device, "stand-in")
        suite.update(pred.to(device), target.to(device), mask.to(device))
        results.append(suite.compute()["total"])
    cpu, gpu = results
    assert gpu["ssim"] == pytest.approx(cpu["ssim"], abs=1e-5)
    assert gpu["psnr"] == pytest.approx(cpu["psnr"], abs=1e-4)
    assert gpu["fid"] == pytest.approx(cpu["fid"], rel=1e-3, abs=1e-4)
