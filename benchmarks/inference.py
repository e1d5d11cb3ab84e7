"""Inference latency: the plain eager model against the optimised path, same run, same inputs.

    python benchmarks/inference.py --arch big-lama --sizes 256,512,1024
    python benchmarks/inference.py --arch big-lama --sizes 512 --compile --json
    python benchmarks/inference.py --device cuda --sizes 512,1024 --dtypes fp32,bf16 --out infer.json
    python benchmarks/inference.py --default-model default --sizes 256,512,1024 --out default.json

`--default-model PATH` (a release folder, or `default` for the shipped one) times, on a photo with a LaMa
thick mask, the whole `Inpainter(PATH, optimize=True)` call (host prefill, upload, network, composite),
its prefill alone, big-lama's optimised forward pass (random weights: the cost is the same) and every
classical fill of `latentpaint predict --method` (`--classical`), interleaved, medians over `--reps`.

Eager = `network(image, mask)` under `torch.no_grad()`, BatchNorm in eval mode, as LaMa runs it (an
untrained network, its BatchNorm statistics measured on two batches so its output is not saturated).
bn-folded = BatchNorm folded into the convolutions, NCHW, under `torch.inference_mode()`.
optimized = `Inpainter(..., optimize=True)`'s network: BN folded + channels-last, under inference_mode.
`--compile` adds optimized + `torch.compile`. `--dtypes fp32,bf16` adds eager and optimized under bf16
autocast (what `Inpainter(dtype="bf16")` runs). Timings are medians over `--reps` calls after warm-up,
interleaved so drift hits every variant alike; max|diff| is against the eager output's logits (the
final sigmoid removed, see below; `logit_scale` is their largest magnitude), and the grey-level
differences compare the images (sigmoid applied, times 255) inside the hole. On CUDA the memory is
`torch.cuda.max_memory_allocated` of one call of that variant.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
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
    p.add_argument("--compile-sizes", help="with --compile: only at these sizes (default: every size)")
    p.add_argument("--dtypes", default="fp32", help="fp32 and/or bf16 / fp16 autocast, comma-separated")
    p.add_argument(
        "--skip", default="", help="variants to leave out, comma-separated (e.g. bn-folded,eager-bf16)"
    )
    p.add_argument(
        "--default-model", help="compare this release (or `default`) with big-lama and classical fills"
    )
    p.add_argument("--classical", default="all", help="with --default-model: classical fills (default all)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--out", help="also write the JSON to this file (rewritten after each size)")
    return p.parse_args(argv)


AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


class Peak:
    """Peak memory of a block: CUDA allocations on a GPU, the process' resident set on a CPU."""

    def __init__(self, device: torch.device):
        self.device, self.peak = device, 0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.rss = PeakRSS().__enter__()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self.rss.__exit__(*exc)
            self.peak = self.rss.peak


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


def photo(size: int) -> tuple[np.ndarray, np.ndarray]:
    """A built-in photo cropped to size x size and a seeded LaMa thick mask of that size."""
    import cv2

    from latentpaint.data.images import builtin_photos
    from latentpaint.masks import get_mask_generator

    image = builtin_photos()[0][1]
    scale = size / min(image.shape[:2])
    image = cv2.resize(
        image, (max(size, round(image.shape[1] * scale)), max(size, round(image.shape[0] * scale)))
    )
    mask = get_mask_generator("thick_256" if size <= 256 else "thick_512", size)(
        size, size, np.random.default_rng(0)
    )
    return np.ascontiguousarray(image[:size, :size]), mask


def forward(network, x, m, device) -> None:
    with torch.inference_mode():
        network(x, m)
        sync(device)


def compare_default(args) -> dict:
    """The default model end to end beside big-lama's optimised forward pass and the classical fills."""
    from latentpaint.inference.classical import CLASSICAL_METHODS, classical_fill
    from latentpaint.inference.inpainter import Inpainter
    from latentpaint.models.apply import host_prefill_of
    from latentpaint.models.prefill import host_prefill

    device = torch.device(args.device)
    model = Inpainter.from_pretrained(args.default_model, device=str(device), optimize=True)
    kind = host_prefill_of(model.network)
    lama = optimize_for_inference(InpaintingNetwork("big-lama", "alpha").to(device).eval())
    methods = list(CLASSICAL_METHODS) if args.classical == "all" else args.classical.split(",")
    results: dict = {"machine": machine(), "device": str(device), "model": args.default_model,
                     "prefill": kind, "sizes": {}}  # fmt: skip
    for size in [int(s) for s in args.sizes.split(",")]:
        image, mask = photo(size)
        x, m = inputs(size, device)
        x, m = (
            x.contiguous(memory_format=torch.channels_last),
            m.contiguous(memory_format=torch.channels_last),
        )

        calls = {
            "default model": partial(model, image, mask),
            "big-lama optimized forward": partial(forward, lama, x, m, device),
        }
        if kind is not None:
            calls[f"its {kind} prefill alone"] = partial(host_prefill, kind, image, mask)
        for name in methods:
            calls[name] = partial(classical_fill, image, mask, name)
        times: dict[str, list[float]] = {name: [] for name in calls}
        for call in calls.values():
            call()  # warm-up
        for _ in range(args.reps):
            for name, call in calls.items():
                t0 = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - t0)
        lama_s = median(times["big-lama optimized forward"])
        results["sizes"][str(size)] = {
            "mask_area": float(mask.mean()),
            "seconds": {name: median(t) for name, t in times.items()},
            "vs_big_lama": {name: median(t) / lama_s for name, t in times.items()},
        }
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=2))
    m = results["machine"]
    print(f"default model ({kind} prefill) on {device}: {m['cpu']}, {m['cores']} cores, torch {m['torch']}")
    print(f"{'size':>6} {'what':<30} {'s/image':>9} {'x big-lama':>11}")
    for size, row in results["sizes"].items():
        for name, seconds in row["seconds"].items():
            print(f"{size:>6} {name:<30} {seconds:>9.3f} {row['vs_big_lama'][name]:>10.2f}x")
    return results


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.default_model:
        return compare_default(args)
    device = torch.device(args.device)
    torch.manual_seed(0)
    network = InpaintingNetwork(args.arch, args.mask_mode).to(device)
    calibrate_batchnorm(network, device)
    # compare logits: an untrained 18-block generator drives its sigmoid to exactly 0 or 1, where every
    # variant agrees to the bit whatever it computed (the sigmoid costs nothing next to the convolutions)
    network.generator.model[-1] = torch.nn.Identity()
    folded = optimize_for_inference(network, channels_last=False)
    optimized = optimize_for_inference(network)
    # name -> (network, grad mode, channels-last inputs, autocast dtype)
    variants = {
        "eager": (network, torch.no_grad, False, None),
        "bn-folded": (folded, torch.inference_mode, False, None),
        "optimized": (optimized, torch.inference_mode, True, None),
    }
    for dtype in [d for d in args.dtypes.split(",") if d and d != "fp32"]:
        variants[f"eager-{dtype}"] = (network, torch.no_grad, False, AUTOCAST[dtype])
        variants[f"optimized-{dtype}"] = (optimized, torch.inference_mode, True, AUTOCAST[dtype])
    for name in [v for v in args.skip.split(",") if v and v != "eager"]:
        variants.pop(name, None)
    compiled = torch.compile(optimized, dynamic=False) if args.compile else None
    compile_sizes = {int(s) for s in args.compile_sizes.split(",")} if args.compile_sizes else None
    compile_s: dict[str, float] = {}

    mem_key = "peak_cuda_mb" if device.type == "cuda" else "peak_rss_mb"
    results: dict = {"machine": machine(), "arch": args.arch, "device": str(device), "sizes": {}}
    for size in [int(s) for s in args.sizes.split(",")]:
        at_size = dict(variants)
        if compiled is not None and (compile_sizes is None or size in compile_sizes):
            at_size["optimized+compile"] = (compiled, torch.inference_mode, True, None)
        image, mask = inputs(size, device)
        with torch.no_grad():
            reference = network(image, mask)
        logit_scale = float(reference.abs().max())
        hole = mask.bool().expand_as(reference)
        times: dict[str, list[float]] = {k: [] for k in at_size}
        peaks, diffs, greys = {}, {}, {}
        as_channels_last = (
            image.contiguous(memory_format=torch.channels_last),
            mask.contiguous(memory_format=torch.channels_last),
        )
        for name, (net, mode, cl, dtype) in at_size.items():  # warm-up, check, peak memory of one call
            x, m = as_channels_last if cl else (image, mask)
            with mode(), autocast(device, dtype), Peak(device) as peak:
                t0 = time.perf_counter()
                out = net(x, m).float()
                sync(device)
                if name == "optimized+compile":
                    compile_s[str(size)] = time.perf_counter() - t0
            peaks[name] = peak.peak
            diffs[name] = float((out - reference).abs().max())
            grey = ((out.sigmoid() - reference.sigmoid()).abs() * 255)[hole]
            greys[name] = (float(grey.max()), float(grey.mean()))
        for _ in range(args.reps):
            for name, (net, mode, cl, dtype) in at_size.items():
                x, m = as_channels_last if cl else (image, mask)
                with mode(), autocast(device, dtype):
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
            mem_key: {k: v / 2**20 for k, v in peaks.items()},
        }
        for name in at_size:
            if name == "eager":
                continue
            key = name.replace("+", "_").replace("-", "_")
            row[f"{key}_s"] = median(times[name])
            row[f"{key}_speedup"] = eager_s / median(times[name])
            row[f"{key}_max_abs_diff"] = diffs[name]
            row[f"{key}_max_grey_diff"], row[f"{key}_mean_grey_diff"] = greys[name]
        # the names the report format uses
        if "optimized" in at_size:
            row["speedup"], row["max_abs_diff"] = row["optimized_speedup"], row["optimized_max_abs_diff"]
        results["sizes"][str(size)] = row
        results["variants"] = list(dict.fromkeys([*results.get("variants", []), *at_size]))
        if compile_s:
            # the first call at each size compiles; the number at the first size is what it used to report
            results["compile_s"] = next(iter(compile_s.values()))
            results["compile_s_by_size"] = dict(compile_s)
        if args.out:  # after each size: a time limit keeps what was measured
            Path(args.out).write_text(json.dumps(results, indent=2))

    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results, results["variants"])
    return results


def print_table(results: dict, variants: list[str]) -> None:
    m = results["machine"]
    print(
        f"{results['arch']} on {results['device']}: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} threads, torch {m['torch']}"
    )
    mem_key = "peak_cuda_mb" if results["device"].startswith("cuda") else "peak_rss_mb"
    memory = "peak CUDA MB" if mem_key == "peak_cuda_mb" else "process peak RSS MB"
    print(
        f"{'size':>6} {'variant':<26} {'s/image':>9} {'images/s':>9} {'speedup':>8} {'max|diff|':>10} {memory:>20}"
    )
    for size, row in results["sizes"].items():
        for name in variants:
            key = name.replace("+", "_").replace("-", "_")
            if name != "eager" and f"{key}_s" not in row:
                continue  # compiled at other sizes only
            s = row["eager_s"] if name == "eager" else row[f"{key}_s"]
            speed = 1.0 if name == "eager" else row[f"{key}_speedup"]
            diff = 0.0 if name == "eager" else row[f"{key}_max_abs_diff"]
            print(
                f"{size:>6} {name:<26} {s:>9.3f} {1 / s:>9.2f} {speed:>7.2f}x {diff:>10.1e} {row[mem_key][name]:>20.0f}"
            )
    if "compile_s" in results:
        print(f"torch.compile: first call (compilation) took {results['compile_s']:.0f} s")


if __name__ == "__main__":
    main()
