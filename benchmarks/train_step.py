"""Training step time of the thesis presets, all measured in one run, as ratios to `pixel-alpha`.

    python benchmarks/train_step.py --arch thesis --size 256 --batch 8 --steps 20
    python benchmarks/train_step.py --arch thesis --with-lama-full --json

Each preset trains with Lightning exactly as `latentpaint train` does (same system, manual optimisation,
frozen parts in eval mode), on one fixed in-memory batch so only the step itself is timed: the time from
Lightning's batch start to batch end, median over `--steps` steps after `--warmup`. Presets run in
interleaved rounds so machine drift hits all of them alike. `--data` also times the real data pipeline
(built-in photos, crops + masks, `--num-workers` workers) alone, to show it keeps up with training.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).parent))
from common import PeakRSS, machine, median, sync  # noqa: E402

from latentpaint.training.inpainting import InpaintingSystem, build_inpainting_system  # noqa: E402
from latentpaint.training.presets import load_preset  # noqa: E402

TABLE_5_1 = ["pixel-alpha", "pixel-control", "latent-alpha", "latent-control"]
TABLE_5_2 = ["lama-full", "lama-full-framework"]


class FixedBatch(Dataset):
    """The same batch every step: the step is timed, not JPEG decoding."""

    def __init__(self, batch: dict, steps: int):
        self.batch, self.steps = batch, steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, i: int) -> dict:
        return self.batch


class StepClock(L.Callback):
    def __init__(self):
        self.times: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        sync(pl_module.device)
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        sync(pl_module.device)
        self.times.append(time.perf_counter() - self._t0)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="thesis")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=20, help="timed steps per preset (split over the rounds)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per preset and round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument(
        "--presets",
        default=",".join(TABLE_5_1),
        help="comma-separated; PRESET+key=value variants too, e.g. latent-alpha+model.train_first_conv=false "
        "(frozen encoder, no mask path: only the refiner trains, the floor any latent preset can reach)",
    )
    p.add_argument("--with-lama-full", action="store_true", help="also lama-full and lama-full-framework")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--data", action="store_true", help="also time the data pipeline alone")
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    return p.parse_args(argv)


def build_system(preset: str, args: argparse.Namespace) -> InpaintingSystem:
    """`preset`, or `preset+key=value+...` for a variant (e.g. the refiner-only floor below), on an untrained
    stage-1 autoencoder of the same generator (its weights do not change the arithmetic)."""
    name, *overrides = preset.split("+")
    cfg = load_preset(
        name,
        [f"model.arch={args.arch}", f"data.size={args.size}", f"data.batch_size={args.batch}",
         "loss.perceptual_weights=random", *overrides],  # untrained backbone: same arithmetic as real weights
    )  # fmt: skip
    stage1 = cfg.model.spec.autoencoder_generator().state_dict()
    return build_inpainting_system(cfg, stage1)


def run_steps(system: InpaintingSystem, batch: dict, steps: int, device: str) -> list[float]:
    clock = StepClock()
    trainer = L.Trainer(
        max_steps=steps, accelerator="gpu" if device == "cuda" else "cpu", devices=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[clock],
        num_sanity_val_steps=0, limit_val_batches=0,
    )  # fmt: skip
    loader = DataLoader(FixedBatch(batch, steps), batch_size=None)
    trainer.fit(system, loader)
    return clock.times


def time_data_pipeline(args: argparse.Namespace, batches: int = 30) -> float:
    """images/s of the real training loader alone (built-in photos, `wide` masks)."""
    from latentpaint.data.datamodule import InpaintingDataModule

    data = InpaintingDataModule(
        "builtin", args.size, args.batch, args.num_workers, "wide", seed=0, max_steps=batches + 5
    )
    loader = iter(data.train_dataloader())
    for _ in range(5):  # worker start-up and cache fill are not throughput
        next(loader)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(loader)
    return batches * args.batch / (time.perf_counter() - t0)


def main(argv=None) -> dict:
    args = parse_args(argv)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    # commas inside {...} belong to a YAML value (PRESET+model.overrides={a: 1, b: 2}), not the list
    presets = re.split(r",(?![^{]*})", args.presets) + (TABLE_5_2 if args.with_lama_full else [])
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    batch = {
        "image": torch.rand(args.batch, 3, args.size, args.size, generator=g),
        "mask": torch.zeros(args.batch, 1, args.size, args.size),
    }
    batch["mask"][..., args.size // 4 : 3 * args.size // 4, args.size // 4 : args.size // 2] = 1
    systems = {p: build_system(p, args) for p in presets}
    # before any training step: loader workers forked from a process whose OpenMP pool has run can hang
    data_ips = time_data_pipeline(args) if args.data else None

    times: dict[str, list[float]] = {p: [] for p in presets}
    peaks: dict[str, int] = {}
    per_round = max(1, args.steps // args.rounds)
    for _ in range(args.rounds):
        for preset, system in systems.items():
            if args.device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            with PeakRSS() as rss:
                step_times = run_steps(system, batch, args.warmup + per_round, args.device)
            times[preset] += step_times[args.warmup :]
            peak = torch.cuda.max_memory_allocated() if args.device == "cuda" else rss.peak
            peaks[preset] = max(peaks.get(preset, 0), peak)

    base = median(times[presets[0]])
    results = {
        "machine": machine(), "arch": args.arch, "size": args.size, "batch": args.batch, "device": args.device,
        "memory": "peak CUDA allocation" if args.device == "cuda" else "process peak RSS", "presets": {},
    }  # fmt: skip
    for preset in presets:
        step = median(times[preset])
        results["presets"][preset] = {
            "step_s": step, "ratio": step / base, "images_per_s": args.batch / step,
            "peak_memory_mb": peaks[preset] / 2**20, "timed_steps": len(times[preset]),
        }  # fmt: skip
    if data_ips is not None:
        fastest = max(r["images_per_s"] for r in results["presets"].values())
        results["data_pipeline"] = {
            "images_per_s": data_ips,
            "num_workers": args.num_workers,
            "ratio_to_fastest_training": data_ips / fastest,
        }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)
    return results


def print_table(results: dict) -> None:
    m = results["machine"]
    print(
        f"{results['arch']} {results['size']}px batch {results['batch']} on {results['device']}: {m['cpu']}, "
        f"{m['cores']} cores, torch {m['torch']}"
    )
    print(f"{'preset':<22} {'s/step':>8} {'ratio':>7} {'images/s':>9} {results['memory'] + ' MB':>24}")
    for preset, r in results["presets"].items():
        print(
            f"{preset:<22} {r['step_s']:>8.3f} {r['ratio']:>6.2f}x {r['images_per_s']:>9.1f} {r['peak_memory_mb']:>24.0f}"
        )
    if "data_pipeline" in results:
        d = results["data_pipeline"]
        print(
            f"data pipeline alone ({d['num_workers']} workers): {d['images_per_s']:.1f} images/s = "
            f"{d['ratio_to_fastest_training']:.1f}x the fastest preset's training throughput"
        )


if __name__ == "__main__":
    main()
