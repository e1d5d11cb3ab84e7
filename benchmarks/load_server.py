"""Load test of the web server on loopback: concurrent clients post real photos and masks to /api/inpaint.

Starts uvicorn with `create_app(Inpainter(...))` in a thread of this process, bound to 127.0.0.1 on a free
port, and sends a fixed number of requests from client threads (one httpx client each); nothing leaves
this machine. Clients and server share the process and its cores, as they would on a laptop demo.

    python benchmarks/load_server.py                       # untrained network, 8 clients, 200 requests
    python benchmarks/load_server.py --model runs/release --images photos/ --json

Exits 1 if any request failed (a status other than 200, a body that is not a PNG of the image's size, a
timeout or a connection error), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import torch
import uvicorn
from PIL import Image

from latentpaint.data.images import builtin_photos, list_images, load_rgb
from latentpaint.errors import LatentpaintError
from latentpaint.inference.inpainter import Inpainter
from latentpaint.masks import get_mask_generator, mask_area
from latentpaint.models.network import InpaintingNetwork
from latentpaint.server import create_app

MASK_PRESET = "medium_512"
START_TIMEOUT_S = 30


@dataclass
class Payload:
    """One request's body parts, encoded before the clock starts."""

    name: str
    image_png: bytes
    mask_png: bytes
    size: tuple[int, int]  # (width, height) the answer must have


@dataclass
class Outcome:
    latency_s: float
    error: str | None  # None for a good answer


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="release folder, training checkpoint or LaMa folder (default: untrained)")
    p.add_argument("--images", help="folder of photos (default: the built-in photos)")
    p.add_argument("--size", type=int, default=512, help="long side of the photos sent, in pixels (512)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (8)")
    p.add_argument("--requests", type=int, default=200, help="requests in total (200)")
    p.add_argument(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        help="skip the uncounted warm-up: a request per image size and per client (first runs are slower)",
    )
    p.add_argument("--timeout", type=float, default=300, help="seconds one request may take (300)")
    p.add_argument("--device", default="cpu", help="torch device of the model (cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed of the masks (0)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    args = p.parse_args(argv)
    for name in ("size", "clients", "requests", "timeout"):
        if getattr(args, name) <= 0:
            p.error(f"--{name} must be positive")
    return args


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def load_photos(folder: str | None, size: int) -> list[tuple[str, np.ndarray]]:
    """(name, uint8 RGB) with the long side resized to `size`."""
    if folder is None:
        photos = builtin_photos()
    else:
        paths = list_images(folder)
        if not paths:
            raise LatentpaintError(f"no images in {folder}")
        photos = [(path.stem, load_rgb(path)) for path in paths]
    resized = []
    for name, photo in photos:
        height, width = photo.shape[:2]
        scale = size / max(height, width)
        new = (max(1, round(width * scale)), max(1, round(height * scale)))
        resized.append((name, np.asarray(Image.fromarray(photo).resize(new, Image.Resampling.LANCZOS))))
    return resized


def make_payloads(
    photos: list[tuple[str, np.ndarray]], count: int, size: int, seed: int
) -> tuple[list[Payload], float]:
    """`count` requests cycling through the photos, each with its own seeded mask; and the mean mask area."""
    generator = get_mask_generator(MASK_PRESET, size)
    rng = np.random.default_rng(seed)
    encoded = [png(photo) for _, photo in photos]
    payloads, areas = [], []
    for i in range(count):
        name, photo = photos[i % len(photos)]
        height, width = photo.shape[:2]
        mask = generator(height, width, rng)
        areas.append(mask_area(mask))
        mask_png = png((mask > 0).astype(np.uint8) * 255)
        payloads.append(Payload(name, encoded[i % len(photos)], mask_png, (width, height)))
    return payloads, float(np.mean(areas))


def start_server(inpainter: Inpainter) -> tuple[uvicorn.Server, threading.Thread, socket.socket, str]:
    """uvicorn serving the app in a daemon thread on 127.0.0.1 and a free port; returns its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    server = uvicorn.Server(uvicorn.Config(create_app(inpainter), log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return server, thread, sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


def send(client: httpx.Client, payload: Payload) -> Outcome:
    """Posts one request; an answer counts only if it is a PNG of the image's size."""
    files = {
        "image": (f"{payload.name}.png", payload.image_png, "image/png"),
        "mask": ("mask.png", payload.mask_png, "image/png"),
    }
    start = time.perf_counter()
    try:
        response = client.post("/api/inpaint", files=files)
    except httpx.HTTPError as exc:
        return Outcome(time.perf_counter() - start, f"{type(exc).__name__}: {exc}")
    latency = time.perf_counter() - start
    if response.status_code != 200:
        return Outcome(latency, f"HTTP {response.status_code}: {response.text[:200]}")
    try:
        with Image.open(io.BytesIO(response.content)) as answer:  # reads the header only
            if answer.format != "PNG" or answer.size != payload.size:
                return Outcome(
                    latency, f"got a {answer.format} of {answer.size}, expected PNG {payload.size}"
                )
    except Exception as exc:  # PIL's errors when the body is no image
        return Outcome(latency, f"the answer is not an image: {exc}")
    return Outcome(latency, None)


def run_clients(clients: list[httpx.Client], payloads: list[Payload]) -> tuple[list[Outcome], float]:
    """Sends every payload once, one thread per client taking the next one; the outcomes and wall time."""
    outcomes: list[Outcome | None] = [None] * len(payloads)
    next_index = iter(range(len(payloads)))
    lock = threading.Lock()

    def client_loop(client: httpx.Client) -> None:
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                return
            outcomes[i] = send(client, payloads[i])

    threads = [threading.Thread(target=client_loop, args=(c,), daemon=True) for c in clients]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    return [o if o is not None else Outcome(0.0, "never sent") for o in outcomes], wall


def peak_rss_mib() -> float:
    """This process's peak resident memory (server, model and clients together)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }


def summarize(outcomes: list[Outcome], wall: float) -> dict:
    latencies = np.array([o.latency_s for o in outcomes if o.error is None])
    errors = [o.error for o in outcomes if o.error is not None]
    ok = len(latencies)
    return {
        "requests": len(outcomes),
        "ok": ok,
        "errors": len(errors),
        "first_errors": errors[:5],
        "latency_s": {
            "p50": float(np.percentile(latencies, 50)) if ok else None,
            "p95": float(np.percentile(latencies, 95)) if ok else None,
            "max": float(latencies.max()) if ok else None,
        },
        "wall_s": wall,
        "throughput_rps": ok / wall if wall > 0 else 0.0,
    }


def report(result: dict) -> str:
    lat, m = result["latency_s"], result["machine"]
    lines = [
        f"latentpaint server load test: {result['requests']} requests from {result['clients']} clients "
        f"to {result['url']}/api/inpaint",
        f"model: {result['model']} on {result['device']}",
        f"images: {result['images']} ({result['photos']} photos), long side {result['size']} px; masks "
        f"{MASK_PRESET} (seed {result['seed']}), mean area {result['mean_mask_area']:.0%}; "
        f"{result['warmup']} warm-up requests (each image size, each client) not counted",
        f"requests: {result['ok']} ok, {result['errors']} errors",
    ]
    lines += [f"  error: {e}" for e in result["first_errors"]]
    if result["warmup_errors"]:
        lines.append(f"warm-up: {result['warmup_errors']} of {result['warmup']} failed")
    if result["ok"]:
        lines.append(f"latency: p50 {lat['p50']:.3f} s, p95 {lat['p95']:.3f} s, max {lat['max']:.3f} s")
    lines += [
        f"throughput: {result['throughput_rps']:.2f} requests/s ({result['wall_s']:.1f} s wall)",
        f"peak RSS: {result['peak_rss_mib']:.0f} MiB (server, model and clients in one process)",
        f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), "
        f"Python {m['python']}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.model:
            inpainter = Inpainter.from_pretrained(args.model, device=args.device)
            model = args.model
        else:
            torch.manual_seed(0)
            inpainter = Inpainter(InpaintingNetwork("thesis", "control"), device=args.device)
            model = 'untrained InpaintingNetwork("thesis", "control") (random weights: real timings, no real fills)'
        photos = load_photos(args.images, args.size)
    except LatentpaintError as exc:
        print(f"load_server: error: {exc}", file=sys.stderr)
        return 2
    payloads, mean_area = make_payloads(photos, args.requests, args.size, args.seed)
    # one photo of each distinct size, so no counted request pays for a shape seen the first time
    shapes = {photo.shape: (name, photo) for name, photo in reversed(photos)}
    warmup_count = max(len(shapes), args.clients)
    warmup = (
        make_payloads(list(shapes.values()), warmup_count, args.size, args.seed + 1)[0] if args.warmup else []
    )

    server, thread, sock, url = start_server(inpainter)
    # the clients exist before the clock starts, and the warm-up goes through all of them at once, so their
    # connections and the server's worker threads are there when the counted requests begin
    clients = [httpx.Client(base_url=url, timeout=args.timeout) for _ in range(args.clients)]
    try:
        warmed, _ = run_clients(clients, warmup)
        outcomes, wall = run_clients(clients, payloads)
    finally:
        for client in clients:
            client.close()
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()

    result = {
        "url": url,
        "model": model,
        "device": str(inpainter.device),
        "images": args.images or "built-in",
        "photos": len(photos),
        "size": args.size,
        "seed": args.seed,
        "mean_mask_area": mean_area,
        "clients": args.clients,
        "warmup": len(warmup),
        **summarize(outcomes, wall),
        "warmup_errors": sum(o.error is not None for o in warmed),
        "peak_rss_mib": peak_rss_mib(),
        "machine": machine(),
    }
    print(json.dumps(result) if args.json else report(result))
    return 1 if result["errors"] or result["warmup_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
