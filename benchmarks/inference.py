"""Inference latency: the plain eager model against the optimised path, same run, same inputs.

    python benchmarks/inference.py --arch big-lama --sizes 256,512,1024
    python benchmarks/inference.py --arch big-lama --sizes 512 --compile --json

Eager = `network(image, mask)` under `torch.no_grad()`, BatchNorm in eval mode, as LaMa runs it (an
untrained network, its BatchNorm statistics measured on two batches so its output is not saturated).
bn-folded = BatchNorm folded into the convolutions, NCHW, under `torch.inference_mode()`.
optimized = `Inpainter(..., optimize=True)`'s network: BN folded + channels-last, under inference_mode.
`--compile` adds optimized + `torch.compile`. Timings are medians over `--reps` calls after warm-up,
interleaved so drift hits every variant alike; max|diff| is against the eager output's logits (the
final sigmoid removed, see below; `logit_scale` is their largest magnitude).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import PeakRSS, machine, median, sync  # noqa: E402

from latentpaint.inference.optimize import optimize_for_inference  # noqa: E402
from latentpaint.models.network import InpaintingNetwork  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="big-lama", help="generator preset: thesis, lama-fourier, big-lama")
    p.add_argument("--mask-mode", default="alpha", choices=["alpha", "control"])
    p.add_argument("--sizes", default="256,512,1024")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--compile", action="store_true", help="also measure folded + torch.compile (slow to compile)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    return p.parse_args(argv)


def inputs(size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(size)
    image = torch.rand(1, 3, size, size, generator=g)
    mask = torch.zeros(1, 1, size, size)
    mask[..., size // 4 : size // 2, size // 8 : size // 2] = 1  # a box, about 11% of the image
    return image.to(device), mask.to(device)


def calibrate_batchnorm(network: torch.nn.Module, device: torch.device) -> None:
    """BatchNorm statistics measured on images, as after training: an untrained deep generator with
    default statistics saturates its sigmoid to exactly 0 or 1, and every variant would then agree to the
    bit whatever it computed."""
    for m in network.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a plain average over the calibration batches
    network.train()
    with torch.no_grad():
        for seed in range(2):
            image, mask = inputs(128 + 8 * seed, device)
            network(image, mask)
    network.eval()


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    network = InpaintingNetwork(args.arch, args.mask_mode).to(device)
    calibrate_batchnorm(network, device)
    # compare logits: an untrained 18-block generator drives its sigmoid to exactly 0 or 1, where every
    # variant agrees to the bit whatever it computed (the sigmoid costs nothing next to the convolutions)
    network.generator.model[-1] = torch.nn.Identity()
    folded = optimize_for_inference(network, channels_last=False)
    optimized = optimize_for_inference(network)
    variants = {
        "eager": (network, torch.no_grad, False),
        "bn-folded": (folded, torch.inference_mode, False),
        "optimized": (optimized, torch.inference_mode, True),
    }
    compile_s = None
    if args.compile:
        variants["optimized+compile"] = (torch.compile(optimized, dynamic=False), torch.inference_mode, True)

    results: dict = {"machine": machine(), "arch": args.arch, "device": str(device), "sizes": {}}
    for size in [int(s) for s in args.sizes.split(",")]:
        image, mask = inputs(size, device)
        with torch.no_grad():
            reference = network(image, mask)
        logit_scale = float(reference.abs().max())
        times: dict[str, list[float]] = {k: [] for k in variants}
        peaks, diffs = {}, {}
        as_channels_last = (
            image.contiguous(memory_format=torch.channels_last),
            mask.contiguous(memory_format=torch.channels_last),
        )
        for name, (net, mode, cl) in variants.items():  # warm-up, check, peak memory of one call
            x, m = as_channels_last if cl else (image, mask)
            with mode(), PeakRSS() as rss:
                t0 = time.perf_counter()
                out = net(x, m)
                sync(device)
                if name == "optimized+compile" and compile_s is None:
                    compile_s = time.perf_counter() - t0
            peaks[name] = rss.peak
            diffs[name] = float((out - reference).abs().max())
        for _ in range(args.reps):
            for name, (net, mode, cl) in variants.items():
                x, m = as_channels_last if cl else (image, mask)
                with mode():
                    sync(device)
                    t0 = time.perf_counter()
                    net(x, m)
                    sync(device)
                times[name].append(time.perf_counter() - t0)
        eager_s = median(times["eager"])
        row = {
            "logit_scale": logit_scale,
            "eager_s": eager_s,
            "eager_images_per_s": 1 / eager_s,
            "peak_rss_mb": {k: v / 2**20 for k, v in peaks.items()},
        }
        for name in variants:
            if name == "eager":
                continue
            key = name.replace("+", "_").replace("-", "_")
            row[f"{key}_s"] = median(times[name])
            row[f"{key}_speedup"] = eager_s / median(times[name])
            row[f"{key}_max_abs_diff"] = diffs[name]
        # the names the report format uses
        row["speedup"], row["max_abs_diff"] = row["optimized_speedup"], row["optimized_max_abs_diff"]
        results["sizes"][str(size)] = row
    if compile_s is not None:
        results["compile_s"] = compile_s

    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results, list(variants))
    return results


def print_table(results: dict, variants: list[str]) -> None:
    m = results["machine"]
    print(
        f"{results['arch']} on {results['device']}: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} threads, torch {m['torch']}"
    )
    print(
        f"{'size':>6} {'variant':<26} {'s/image':>9} {'images/s':>9} {'speedup':>8} {'max|diff|':>10} {'process peak RSS MB':>20}"
    )
    for size, row in results["sizes"].items():
        for name in variants:
            key = name.replace("+", "_").replace("-", "_")
            s = row["eager_s"] if name == "eager" else row[f"{key}_s"]
            speed = 1.0 if name == "eager" else row[f"{key}_speedup"]
            diff = 0.0 if name == "eager" else row[f"{key}_max_abs_diff"]
            print(
                f"{size:>6} {name:<26} {s:>9.3f} {1 / s:>9.2f} {speed:>7.2f}x {diff:>10.1e} {row['peak_rss_mb'][name]:>20.0f}"
            )
    if "compile_s" in results:
        print(f"torch.compile: first call (compilation) took {results['compile_s']:.0f} s")


if __name__ == "__main__":
    main()
