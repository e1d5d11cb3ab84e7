"""Training step time of the thesis presets, all measured in one run, as ratios to `pixel-alpha`.

    python benchmarks/train_step.py --arch thesis --size 256 --batch 8 --steps 20
    python benchmarks/train_step.py --arch thesis --with-lama-full --json
    python benchmarks/train_step.py --device cuda --batch 8,32 --precision 32-true,bf16-mixed --out t.json

Each preset trains with Lightning exactly as `latentpaint train` does (same system, manual optimisation,
frozen parts in eval mode), on one fixed in-memory batch so only the step itself is timed: the time from
Lightning's batch start to batch end, median over `--steps` steps after `--warmup`. Presets run in
interleaved rounds so machine drift hits all of them alike. `--data` also times the real data pipeline
(built-in photos, crops + masks, `--num-workers` workers) alone, to show it keeps up with training.

`--batch` and `--precision` take comma-separated lists: every combination is timed (one JSON object each,
under "runs", when there is more than one). On CUDA the trainer gets what `latentpaint train` sets there
(TF32 matmuls, cuDNN autotuning); a combination that runs out of memory is recorded as such.
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

from latentpaint.models.prefill import host_fill_tensor  # noqa: E402
from latentpaint.training.inpainting import InpaintingSystem, build_inpainting_system  # noqa: E402
from latentpaint.training.presets import load_preset  # noqa: E402
from latentpaint.training.runner import speed_up_cuda  # noqa: E402

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
    p.add_argument("--batch", default="8", help="batch size, or a comma-separated list")
    p.add_argument(
        "--precision",
        default="32-true",
        help="Lightning precision (32-true, bf16-mixed, 16-mixed), or a list",
    )
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
    p.add_argument("--out", help="also write the JSON to this file")
    return p.parse_args(argv)


def build_system(preset: str, args: argparse.Namespace, batch: int, precision: str) -> InpaintingSystem:
    """`preset`, or `preset+key=value+...` for a variant (e.g. the refiner-only floor below), on an untrained
    stage-1 autoencoder of the same generator (its weights do not change the arithmetic). The precision is
    the config's, so what the run config refuses (16-mixed with a discriminator) is refused here too."""
    name, *overrides = preset.split("+")
    cfg = load_preset(
        name,
        [f"model.arch={args.arch}", f"data.size={args.size}", f"data.batch_size={batch}",
         f"trainer.precision={precision}",
         "loss.perceptual_weights=random", *overrides],  # untrained backbone: same arithmetic as real weights
    )  # fmt: skip
    stage1 = cfg.model.spec.autoencoder_generator().state_dict()
    return build_inpainting_system(cfg, stage1)


def run_steps(system: InpaintingSystem, batch: dict, steps: int, device: str, precision: str) -> list[float]:
    clock = StepClock()
    trainer = L.Trainer(
        max_steps=steps, accelerator="gpu" if device == "cuda" else "cpu", devices=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[clock],
        num_sanity_val_steps=0, limit_val_batches=0, precision=precision,
    )  # fmt: skip
    speed_up_cuda(trainer)  # what `latentpaint train` sets on a CUDA accelerator
    loader = DataLoader(FixedBatch(batch, steps), batch_size=None, pin_memory=device == "cuda")
    trainer.fit(system, loader)
    return clock.times


def fixed_batch(size: int, batch_size: int) -> dict:
    g = torch.Generator().manual_seed(0)
    batch = {
        "image": torch.rand(batch_size, 3, size, size, generator=g),
        "mask": torch.zeros(batch_size, 1, size, size),
    }
    batch["mask"][..., size // 4 : 3 * size // 4, size // 4 : size // 2] = 1
    return batch


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def time_data_pipeline(args: argparse.Namespace, batch_size: int, batches: int = 30) -> float:
    """images/s of the real training loader alone (built-in photos, `wide` masks)."""
    from latentpaint.data.datamodule import InpaintingDataModule

    data = InpaintingDataModule(
        "builtin", args.size, batch_size, args.num_workers, "wide", seed=0, max_steps=batches + 5
    )
    loader = iter(data.train_dataloader())
    for _ in range(5):  # worker start-up and cache fill are not throughput
        next(loader)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(loader)
    return batches * batch_size / (time.perf_counter() - t0)


def time_presets(args, presets: list[str], batch_size: int, precision: str) -> dict:
    """One table: every preset at this batch size and precision, interleaved over `--rounds`."""
    batch = fixed_batch(args.size, batch_size)
    systems = {}
    for p in presets:
        system = build_system(p, args, batch_size, precision)
        entry = dict(batch)
        if system.network.host_prefill is not None:  # what the data module's workers add to each batch
            entry["prefill"] = host_fill_tensor(system.network.prefill, batch["image"], batch["mask"])
        systems[p] = (system, entry)
    times: dict[str, list[float]] = {p: [] for p in presets}
    peaks: dict[str, int] = {}
    errors: dict[str, str] = {}
    per_round = max(1, args.steps // args.rounds)
    for _ in range(args.rounds):
        for preset, (system, entry) in systems.items():
            if preset in errors:
                continue
            if args.device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            try:
                with PeakRSS() as rss:
                    step_times = run_steps(system, entry, args.warmup + per_round, args.device, precision)
            except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:
                if not is_out_of_memory(exc):
                    raise
                errors[preset] = "out of memory"
                continue
            finally:
                if args.device == "cuda":
                    torch.cuda.empty_cache()
            times[preset] += step_times[args.warmup :]
            peak = torch.cuda.max_memory_allocated() if args.device == "cuda" else rss.peak
            peaks[preset] = max(peaks.get(preset, 0), peak)
    del systems

    timed = [p for p in presets if p not in errors]
    base = median(times[presets[0]]) if presets[0] not in errors else None
    results = {
        "machine": machine(), "arch": args.arch, "size": args.size, "batch": batch_size, "device": args.device,
        "precision": precision,
        "memory": "peak CUDA allocation" if args.device == "cuda" else "process peak RSS", "presets": {},
    }  # fmt: skip
    for preset in timed:
        step = median(times[preset])
        results["presets"][preset] = {
            "step_s": step, "ratio": step / base if base else None, "images_per_s": batch_size / step,
            "peak_memory_mb": peaks[preset] / 2**20, "timed_steps": len(times[preset]),
        }  # fmt: skip
    for preset, error in errors.items():
        results["presets"][preset] = {"error": error}
    return results


def main(argv=None) -> dict:
    args = parse_args(argv)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    # commas inside {...} belong to a YAML value (PRESET+model.overrides={a: 1, b: 2}), not the list
    presets = re.split(r",(?![^{]*})", args.presets) + (TABLE_5_2 if args.with_lama_full else [])
    batches = [int(b) for b in str(args.batch).split(",")]
    precisions = str(args.precision).split(",")
    torch.manual_seed(0)
    # before any training step: loader workers forked from a process whose OpenMP pool has run can hang
    data_ips = time_data_pipeline(args, batches[0]) if args.data else None

    runs = []
    for batch_size in batches:
        for precision in precisions:
            runs.append(time_presets(args, presets, batch_size, precision))
            if args.out:  # written after each table: a time limit keeps what was measured
                write(args.out, runs)
    if data_ips is not None:
        fastest = max(r.get("images_per_s", 0) for r in runs[0]["presets"].values())
        runs[0]["data_pipeline"] = {
            "images_per_s": data_ips,
            "num_workers": args.num_workers,
            "ratio_to_fastest_training": data_ips / fastest,
        }
    if args.out:
        write(args.out, runs)
    if args.json:
        print(json.dumps(runs[0] if len(runs) == 1 else {"runs": runs}, indent=2))
    else:
        for results in runs:
            print_table(results)
    return runs[0] if len(runs) == 1 else {"runs": runs}


def write(path: str, runs: list[dict]) -> None:
    Path(path).write_text(json.dumps(runs[0] if len(runs) == 1 else {"runs": runs}, indent=2))


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def print_table(results: dict) -> None:
    m = results["machine"]
    print(
        f"{results['arch']} {results['size']}px batch {results['batch']} {results.get('precision', '32-true')} "
        f"on {results['device']}: {m.get('gpu', m['cpu'])}, {m['cores']} cores, torch {m['torch']}"
    )
    print(f"{'preset':<22} {'s/step':>8} {'ratio':>7} {'images/s':>9} {results['memory'] + ' MB':>24}")
    for preset, r in results["presets"].items():
        if "error" in r:
            print(f"{preset:<22} {r['error']}")
            continue
        print(
            f"{preset:<22} {r['step_s']:>8.3f} {_ratio(r['ratio']):>7} {r['images_per_s']:>9.1f} {r['peak_memory_mb']:>24.0f}"
        )
    if "data_pipeline" in results:
        d = results["data_pipeline"]
        print(
            f"data pipeline alone ({d['num_workers']} workers): {d['images_per_s']:.1f} images/s = "
            f"{d['ratio_to_fastest_training']:.1f}x the fastest preset's training throughput"
        )


if __name__ == "__main__":
    main()
