"""`latentpaint experiment table-5-1|table-5-2|appendix-a`: the thesis tables, rerun and reported.

One stage-1 autoencoder is shared by every run. Each preset of the table trains with the same step budget
once per seed, inpaints the evaluation set and is scored with MetricSuite, beside OpenCV Telea as the
classical floor. The result is `<out>/report.md` + `report.json` with loss curves, a sample grid and the
latent damage map. table-5-2 also has row (0), the authors' LaMa checkpoint scored on the same set
(`--lama-folder big-lama/`). Every run leaves a `done.json`, so the same command after a kill skips
finished runs and resumes an unfinished one from its last checkpoint.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from latentpaint.errors import LatentpaintError
from latentpaint.options import integer, side

# the rows of each table, in the thesis' order; row 1 is the baseline the % changes refer to
TABLES: dict[str, tuple[str, ...]] = {
    "table-5-1": ("pixel-alpha", "pixel-control", "latent-alpha", "latent-control"),
    "table-5-2": ("lama-full", "lama-full-framework"),
    "appendix-a": ("latent-control", "latent-control-delta", "pixel-alpha-delta"),
}
TITLES = {
    "table-5-1": "Table 5.1: mask input (alpha / control), frozen encoder-decoder, pixel vs latent loss",
    "table-5-2": "Table 5.2: LaMa's full loss on the alpha-mask generator vs inside the framework",
    "appendix-a": "Appendix A: a delta refiner with the latent loss (vs plain latent-control) and with the pixel loss",
}
CLASSICAL = "opencv-telea"
DONE = "done.json"
# (key, markdown header, format, higher is better); train time and step time are lower-is-better
QUANTITIES = (
    ("train_time_s", "Train time (s)", "{:.2f}", False),
    ("median_step_s", "Median step (s)", "{:.3f}", False),
    ("fid", "FID ↓", "{:.2f}", False),
    ("lpips", "LPIPS ↓", "{:.4f}", False),
    ("ssim", "SSIM ↑", "{:.4f}", True),
    ("psnr", "PSNR (dB) ↑", "{:.2f}", True),
)
METRIC_NAMES = ("fid", "lpips", "ssim", "psnr")
# settings that may change between invocations of one experiment without changing what a run computes
HARDWARE_KEYS = (
    "trainer.accelerator",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.strategy",
    "trainer.progress_bar",
    "data.num_workers",
)
SAMPLE_ROWS = 4


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "experiment",
        help="rerun a thesis table (train every row per seed, evaluate, write report.md/json + figures)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("table", choices=list(TABLES), help="which table: " + "; ".join(TITLES.values()))
    p.add_argument(
        "--data", default="builtin", help="training images: a folder, or 'builtin' (default; the "
        "built-in photos without the held-out ones)",
    )  # fmt: skip
    p.add_argument(
        "--eval-data", default="builtin", help="LaMa evaluation folder (NAME.png + NAME_maskNNN.png, e.g. from "
        "`latentpaint masks`), or 'builtin' (default: the held-out built-in photos, thick_256 masks, --size px)",
    )  # fmt: skip
    p.add_argument("--steps", type=integer(1), required=True, help="stage-2 training steps of every run")
    p.add_argument("--seeds", type=integer(1, 1000), default=3, help="runs per row, seeds 0..N-1 (default 3)")
    p.add_argument("--out", type=Path, required=True, help="experiment folder (rerun the command to resume)")
    p.add_argument("--autoencoder-steps", type=integer(1), help="stage-1 steps (default: --steps)")
    p.add_argument("--autoencoder", type=Path, help="reuse this stage-1 checkpoint instead of training one")
    p.add_argument("--size", type=side, default=256, help="training crop size (default 256)")
    p.add_argument("--batch-size", type=integer(1, 4096), default=8)
    p.add_argument("--num-workers", type=integer(0, 256), default=2)
    p.add_argument(
        "--metrics", default="ssim,psnr,lpips,fid", help="subset of ssim,psnr,lpips,fid (default: all)"
    )
    p.add_argument("--ssim-convention", default="lama", metavar="{lama,skimage}", help="default: lama")
    p.add_argument(
        "--fid-feature", default="fid-helper", metavar="{fid-helper,pytorch-fid,stand-in}",
        help="FID Inception (default fid-helper; stand-in is for tests only)",
    )  # fmt: skip
    p.add_argument(
        "--weights-dir", type=Path, help="folder with vgg16-397923af.pth (LPIPS), "
        "ade20k/ade20k-resnet50dilated-ppm/encoder_epoch_20.pth (LaMa's ResNet-PL of table-5-2; or "
        "resnet50-0676ba61.pth with loss.perceptual_backbone=resnet50), pt_inception-2015-12-05-6726825d.pth; "
        "nothing is downloaded",
    )  # fmt: skip
    p.add_argument(
        "--lama-folder", type=Path, metavar="DIR", help="table-5-2 only: the official LaMa folder (big-lama/ "
        "with config.yaml + models/best.ckpt), evaluated on the same set as row (0), the authors' checkpoint",
    )  # fmt: skip
    p.add_argument("--accelerator", help="cpu, gpu, auto, ... (Lightning)")
    p.add_argument("--devices", help="number of devices or 'auto' (Lightning)")
    p.add_argument(
        "--set", nargs="+", default=[], metavar="KEY=VALUE",
        help="config overrides for every run, e.g. loss.perceptual=0 (reported)",
    )  # fmt: skip
    p.set_defaults(func=run)


# --- one resumable run -----------------------------------------------------------------------------------


def _flatten(config: dict, prefix: str = "") -> Iterator[tuple[str, object]]:
    for key, value in config.items():
        if isinstance(value, dict) and key != "overrides":
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def config_differences(before: dict, now: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    """'key: old -> new' for every setting that differs, leaving out `ignore` and the hardware keys."""
    old = dict(_flatten(before))
    skip = set(HARDWARE_KEYS) | set(ignore)
    return [
        f"{key}: {old.get(key)!r} -> {value!r}"
        for key, value in _flatten(now)
        if key not in skip and old.get(key) != value
    ]


def run_once(
    run_dir: Path, config: dict | None, settings: dict, finish: Callable[[Path], dict], label: str
) -> dict:
    """Trains `config` into `run_dir` (none for a classical method), then records `finish(checkpoint)` in done.json.

    A run whose done.json has the same `settings` is skipped. A run without one resumes from its
    last.ckpt, or, when training already reached max_steps, only runs `finish` again; a larger step
    budget continues an unfinished run. Different training settings in the same folder are an error.
    """
    import yaml

    from latentpaint.evaluation.cli import finite_json, write_json_atomic
    from latentpaint.inference.checkpoints import load_torch_file
    from latentpaint.training.runner import last_checkpoint, train

    done = run_dir / DONE
    record = json.loads(done.read_text()) if done.is_file() else None
    last = last_checkpoint(run_dir)
    if config is not None and (run_dir / "config.yaml").is_file():
        before = yaml.safe_load((run_dir / "config.yaml").read_text())
        changed = config_differences(before, config, () if record else ("trainer.max_steps",))
        if changed:
            raise LatentpaintError(
                f"{run_dir} was trained with other settings ({'; '.join(changed[:3])}): rerun with the "
                "original options, or use another --out"
            )
    if record is not None and record.get("settings") == settings:
        print(f"{label}: done, skipped")
        return record
    resumed = None
    if config is not None:
        step = int(load_torch_file(last)["global_step"]) if last.is_file() else 0
        steps = config["trainer"]["max_steps"]
        if step < steps:
            resumed = step or None
            print(f"{label}: training {steps} steps" + (f", resuming at step {step}" if step else ""))
            train(config, run_dir, resume=last if step else None)
    print(f"{label}: predicting and evaluating")
    record = {
        "settings": settings,
        "resumed_from_step": resumed,
        "finished_at": _now(),
        **finish(last),
    }
    write_json_atomic(done, finite_json(record))
    return record


# --- data, configurations, machine -----------------------------------------------------------------------


def prepare_datasets(args: argparse.Namespace) -> tuple[Path, Path]:
    """(training folder, LaMa evaluation folder); 'builtin' keeps demo.HELD_OUT out of training for eval."""
    from latentpaint.data.images import save_image
    from latentpaint.demo import prepare_data

    builtin = "builtin" in (args.data, args.eval_data)
    # the evaluation masks are seeded 0 whatever the training seeds: every run sees the same test set
    train_dir, held_out = prepare_data(args.out, args.size, 0) if builtin else (None, [])
    eval_dir = args.out / "data" / "eval"
    if args.eval_data == "builtin":
        for name, crop, mask in held_out:
            save_image(eval_dir / f"{name}.png", crop)
            save_image(eval_dir / f"{name}_mask000.png", (mask * 255).astype("uint8"))
    else:
        eval_dir = Path(args.eval_data)
    data = train_dir if args.data == "builtin" else Path(args.data)
    return data.resolve(), eval_dir.resolve()


def build_configs(args: argparse.Namespace, train_dir: Path) -> tuple[dict, dict[str, dict]]:
    """(stage-1 config, {preset: stage-2 config}) with the experiment's settings, before any training."""
    from latentpaint.training.config import apply_overrides, load_preset

    common = [
        f"data.train={train_dir}", f"data.size={args.size}", f"data.batch_size={args.batch_size}",
        f"data.num_workers={args.num_workers}", f"trainer.progress_bar={str(sys.stderr.isatty()).lower()}",
    ]  # fmt: skip

    def config_for(preset: str, steps: int) -> dict:
        # a few points per curve even for short runs; --set comes last so the user always wins
        every = max(1, min(10, steps // 20))
        sets = [*common, f"trainer.max_steps={steps}", f"trainer.log_every_n_steps={every}", *args.set]
        config = apply_overrides(load_preset(preset), sets)
        if args.accelerator is not None:
            config["trainer"]["accelerator"] = args.accelerator
        if args.devices is not None:
            config["trainer"]["devices"] = int(args.devices) if args.devices.isdigit() else args.devices
        return config

    stage2 = {preset: config_for(preset, args.steps) for preset in TABLES[args.table]}
    for config in stage2.values():
        _find_perceptual_weights(config, args.weights_dir)
    return config_for("autoencoder", args.autoencoder_steps or args.steps), stage2


def _find_perceptual_weights(config: dict, weights_dir: Path | None) -> None:
    """Points loss.perceptual_weights at --weights-dir's file; fails now, not after hours, when it is missing."""
    from latentpaint.losses.perceptual import find_perceptual_weights, resolve_weights

    loss = config["loss"]
    if loss["perceptual"] <= 0:
        return
    if loss["perceptual_weights"] is None and weights_dir is not None:
        loss["perceptual_weights"] = find_perceptual_weights(loss["perceptual_backbone"], weights_dir)
    resolve_weights(loss["perceptual_backbone"], loss["perceptual_weights"])


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str) -> dict:
    """The hardware and software a run measured its time on."""
    import lightning
    import torch

    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
    }


def _describe_machine(m: dict) -> str:
    where = f"GPU {m['gpu']} (host CPU {m['cpu']})" if m.get("gpu") else f"CPU {m['cpu']}"
    return (
        f"{where}, {m['cores']} cores, {m['torch_threads']} torch threads; torch {m['torch']}, "
        f"Lightning {m['lightning']}, Python {m['python']}"
    )


def describe(config: dict) -> dict[str, str]:
    """The table's descriptive columns for a stage-2 config: loss, encoder-decoder, mask."""
    m, loss = config["model"], config["loss"]
    terms = []
    if loss["mode"] in ("pixel", "both"):
        weights = (loss["l1_known"], loss["l1_missing"])
        terms.append(
            "pixel L1"
            if weights == (1.0, 1.0)
            else f"pixel L1 (known {weights[0]:g}, missing {weights[1]:g})"
        )
        if loss["adversarial"] > 0:
            terms.append(f"adversarial ×{loss['adversarial']:g} + R1")
        if loss["adversarial"] > 0 and loss["feature_matching"] > 0:
            terms.append(f"feature matching ×{loss['feature_matching']:g}")
        if loss["perceptual"] > 0:
            from latentpaint.losses.perceptual import describe_backbone

            backbone = describe_backbone(loss["perceptual_backbone"], loss["perceptual_weights"])
            terms.append(f"perceptual ×{loss['perceptual']:g} ({backbone})")
    if loss["mode"] in ("latent", "both"):
        terms.append("latent L1" + (f" ×{loss['latent_weight']:g}" if loss["latent_weight"] != 1 else ""))
        if loss.get("latent_adversarial", 0) > 0:
            terms.append(f"latent adversarial ×{loss['latent_adversarial']:g} + R1")
            if loss.get("latent_feature_matching", 0) > 0:
                terms.append(f"latent feature matching ×{loss['latent_feature_matching']:g}")
    if not m["freeze_autoencoder"]:
        coder = "trainable"
    else:
        coder = "frozen" + (" (stem trainable)" if m["train_first_conv"] else "")
    return {
        "loss": " + ".join(terms),
        "encoder_decoder": coder,
        "mask": m["mask_mode"]
        + (", delta refiner" if m["delta"] else "")
        + (", pyramid prefill" if m.get("prefill", "none") == "pyramid" else ""),
    }


def loss_curve_key(config: dict) -> tuple[str, str]:
    """(metrics.csv column, what it is) of the loss a run optimises."""
    text = describe(config)["loss"]
    if text == "pixel L1":
        return "train/l1", "pixel L1"
    if text == "latent L1":
        return "train/latent_l1", "latent L1"
    return "train/loss", "total loss"


# --- prediction and scoring ------------------------------------------------------------------------------


def predict_and_score(
    predict: Callable, pairs: list[tuple[Path, Path]], eval_dir: Path, pred_dir: Path, suite
) -> dict:
    """Writes `predict(image, mask)` for every pair as pred_dir/NAME_maskNNN.png and scores it; MetricSuite totals."""
    import torch

    from latentpaint.data.images import load_mask, load_rgb, save_image
    from latentpaint.inference.inpainter import image_to_tensor

    suite.reset()
    for image_path, mask_path in pairs:
        image, mask = load_rgb(image_path), load_mask(mask_path)
        result = predict(image, mask)
        save_image(pred_dir / mask_path.relative_to(eval_dir).with_suffix(".png"), result)
        suite.update(image_to_tensor(result), image_to_tensor(image), torch.from_numpy(mask)[None, None])
    results = suite.compute()
    return {"total": results["total"], "count": results["count"]}


def _timing(run_dir: Path) -> dict | None:
    path = run_dir / "timing.json"
    return json.loads(path.read_text()) if path.is_file() else None


# --- table 5.2 row (0): the authors' LaMa checkpoint ------------------------------------------------------
LAMA_ROW_DIR = "lama-authors"
LAMA_ROW_NAME = "(0) LaMa, authors' checkpoint"
LAMA_ROW_HINT = (
    "not evaluated: add `--lama-folder big-lama/` (the official release folder, see the README) for the "
    "authors' checkpoint on this evaluation set"
)


def evaluate_lama_folder(
    args: argparse.Namespace, settings: dict, pairs: list, eval_dir: Path, suite, device: str, here: dict
) -> list[dict] | None:
    """Row (0) of table-5-2: `--lama-folder` inpaints and is scored on the same evaluation set (resumable).

    Runs before any training, so a wrong folder fails at once. None without the option.
    """
    from latentpaint.inference.checkpoints import load_network
    from latentpaint.inference.inpainter import Inpainter

    if args.lama_folder is None:
        return None
    folder = args.lama_folder.resolve()
    run_dir = args.out / LAMA_ROW_DIR

    def finish(_: Path) -> dict:
        inpainter = Inpainter(load_network(folder), device=device)
        scores = predict_and_score(inpainter, pairs, eval_dir, run_dir / "predictions", suite)
        return {"timing": None, "checkpoint": str(folder), "machine": here, **scores}

    record = run_once(run_dir, None, {**settings, "lama_folder": str(folder)}, finish, LAMA_ROW_NAME)
    return [{**record, "dir": LAMA_ROW_DIR}]


def lama_row(runs: list[dict] | None, baseline: dict) -> dict | None:
    """The report row of `evaluate_lama_folder`'s run, with % changes against row 1."""
    if runs is None:
        return None
    row = {
        "preset": LAMA_ROW_NAME,
        "loss": "LaMa's training (L1, adversarial + R1, feature matching, ResNet-PL)",
        "encoder_decoder": "trained by LaMa's authors",
        "mask": "alpha",
        "folder": runs[0]["checkpoint"],
        "runs": runs,
    }
    row.update(summarise(runs, baseline))
    return row


def lama_row_line(report: dict) -> str | None:
    """The markdown line of row (0) in table-5-2: the scores, or how to add them. None for other tables."""
    if report["experiment"] != "table-5-2":
        return None
    row = report.get("lama_row")
    if row is None:
        cells = [LAMA_ROW_NAME, LAMA_ROW_HINT, "—", "—", "—", "—", *["n/a"] * (len(QUANTITIES) - 2)]
    else:
        cells = [row["preset"], row["loss"], row["encoder_decoder"], row["mask"], "—", "—"]
        cells += [_cell(row, key, fmt, False) for key, _, fmt, _ in QUANTITIES[2:]]
    return "| " + " | ".join(cells) + " |"


# --- summary, figures, report ----------------------------------------------------------------------------


def _values(record: dict) -> dict[str, float | None]:
    timing = record.get("timing") or {}
    return {
        "train_time_s": timing.get("train_time_s"),
        "median_step_s": timing.get("median_step_s"),
        **{name: record["total"].get(name) for name in METRIC_NAMES},
    }


def summarise(records: list[dict], baseline: dict | None) -> dict:
    """Mean, sample std (n - 1) over seeds and % change of the mean against the baseline row's mean."""
    import numpy as np

    mean, std, change = {}, {}, {}
    for key, *_ in QUANTITIES:
        values = [v[key] for v in map(_values, records) if v[key] is not None]
        mean[key] = float(np.mean(values)) if values else None
        std[key] = float(np.std(values, ddof=1)) if len(values) > 1 else None
        base = (baseline or {}).get(key)
        change[key] = 100 * (mean[key] - base) / abs(base) if mean[key] is not None and base else None
    return {"mean": mean, "std": std, "change_pct": change}


def _cell(row: dict, key: str, fmt: str, baseline: bool) -> str:
    mean, std, change = row["mean"][key], row["std"][key], row["change_pct"][key]
    if mean is None:
        return "n/a"
    text = fmt.format(mean) + (f" ± {fmt.format(std)}" if std is not None else "")
    return text + (f" ({change:+.1f}%)" if change is not None and not baseline else "")


def write_figures(out: Path, table: tuple[str, ...], configs: dict, pairs: list, eval_dir: Path) -> dict:
    """loss_curves.png, samples.png and latent_damage.png beside the report; returns their names."""
    import numpy as np

    from latentpaint.data.images import load_mask, load_rgb
    from latentpaint.inference.checkpoints import load_training_network
    from latentpaint.inference.inpainter import Inpainter
    from latentpaint.viz.figures import image_grid, plot_loss_curves, read_metric

    curves = {}
    for preset in table:
        key, what = loss_curve_key(configs[preset])
        csv = out / preset / "seed0" / "logs" / "metrics.csv"
        curves[f"{preset}: {what}"] = read_metric(csv, key) if csv.is_file() else ([], [])
    plot_loss_curves(
        curves,
        out / "loss_curves.png",
        ylabel="training loss, seed 0\n(pixel L1 and latent L1 are different losses)",
    )

    def masked(image, mask):
        return (image * (1 - mask[..., None])).astype(np.uint8)

    rows, labels = [], []
    for image_path, mask_path in pairs[:SAMPLE_ROWS]:
        image, mask = load_rgb(image_path), load_mask(mask_path)
        name = mask_path.relative_to(eval_dir).with_suffix(".png")
        outputs = [load_rgb(out / p / "seed0" / "predictions" / name) for p in table]
        rows.append([masked(image, mask), *outputs, load_rgb(out / CLASSICAL / "predictions" / name), image])
        labels.append(name.stem)
    image_grid(rows, ["masked input", *table, CLASSICAL, "ground truth"], out / "samples.png", labels)

    image_path, mask_path = pairs[0]
    image, mask = load_rgb(image_path), load_mask(mask_path)
    checkpoints = [out / p / "seed0" / "checkpoints" / "last.ckpt" for p in table]
    damage = [Inpainter(load_training_network(c)).latent_damage(image, mask) for c in checkpoints]
    titles = [f"{p}\n({configs[p]['model']['mask_mode']} mask)" for p in table]
    image_grid(
        [[masked(image, mask), *damage, image]],
        ["masked input", *titles, "ground truth"],
        out / "latent_damage.png",
        [mask_path.stem],
    )
    return {"loss_curves": "loss_curves.png", "samples": "samples.png", "latent_damage": "latent_damage.png"}


def write_report(out: Path, report: dict) -> None:
    """report.md (the thesis layout plus everything needed to judge it) and report.json."""
    from latentpaint.evaluation.cli import finite_json, write_json_atomic
    from latentpaint.files import atomic_write_bytes

    s, rows = report["setup"], report["rows"]
    base = rows[0]["preset"]
    headers = ["Preset", "Loss", "Encoder-Decoder", "Mask", *(h for _, h, _, _ in QUANTITIES)]
    lines = [
        f"# {TITLES[report['experiment']]}",
        "",
        f"`latentpaint experiment {report['experiment']}`, report written {report['created']}.",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
    ]
    if (line := lama_row_line(report)) is not None:
        lines.append(line)
    for i, row in enumerate(rows):
        cells = [row["preset"], row["loss"], row["encoder_decoder"], row["mask"]]
        cells += [_cell(row, key, fmt, i == 0) for key, _, fmt, _ in QUANTITIES]
        lines.append("| " + " | ".join(cells) + " |")
    classical = report["classical"]
    cells = [CLASSICAL, "—", "—", "—", "—", "—"]
    cells += [_cell(classical, key, fmt, False) for key, _, fmt, _ in QUANTITIES[2:]]
    lines.append("| " + " | ".join(cells) + " |")
    seeds = ", ".join(map(str, s["seeds"]))
    lines += [
        "",
        f"Mean ± sample std over {len(s['seeds'])} seed(s) ({seeds}); a single seed has no std. "
        f"(±x%): change of the mean against row 1 ({base}), for every column including train time. "
        f"{CLASSICAL} is OpenCV's Telea inpainting on the same masks: the floor any learned model must beat.",
    ]
    unavailable = report["metrics"]["unavailable"]
    skipped = [m.upper() for m in METRIC_NAMES if m not in report["metrics"]["requested"]]
    if unavailable or skipped:
        lines.append("")
    for name, reason in unavailable.items():
        lines.append(f"- {name.upper()}: n/a, {reason}")
    if skipped:
        lines.append(
            f"- {', '.join(skipped)}: n/a, not requested (--metrics {','.join(report['metrics']['requested'])})"
        )
    lines += ["", "## Setup", ""]
    lines += [
        f"- Step budget: {s['steps']} stage-2 steps per run, batch {s['batch_size']}, {s['size']} px crops, "
        f"{s['mask_preset']} training masks; training data `{s['train_data']}`.",
        f"- Stage-1 autoencoder (shared by all runs): {s['autoencoder']['text']}",
        f"- Evaluation: `{s['eval_data']}`, {s['eval_pairs']} masks on {s['eval_images']} images "
        f"({s['eval_sizes']}), predicted at that resolution; whole-image scores.",
        f"- SSIM convention: {report['metrics']['ssim_convention']}"
        + (
            f" ({report['metrics']['descriptions']['ssim']})"
            if "ssim" in report["metrics"]["descriptions"]
            else ""
        ),
    ]
    lines += [
        f"- {name.upper()}: {text}"
        for name, text in report["metrics"]["descriptions"].items()
        if name != "ssim"
    ]
    if "fid" in report["metrics"]["descriptions"] and s["eval_pairs"] < 1000:
        lines.append(
            f"- FID from {s['eval_pairs']} images is dominated by small-sample bias: compare rows with each "
            "other only, never with published FIDs."
        )
    lines += [
        "- Train time: sum of the per-step wall times of the run (forward, backward, optimiser step; data "
        "loading, checkpoint writes and start-up not included), from its `timing.json`; the median step "
        "leaves out the first (warm-up) step. Every run of a row has the same step budget.",
        f"- Machine: {_describe_machine(report['machine'])}; report date {report['created']}.",
    ]
    if len(report["run_machines"]) > 1:
        lines.append(
            "- Runs were finished on different machines, so train times are not comparable: "
            + "; ".join(_describe_machine(m) for m in report["run_machines"])
        )
    if s["overrides"]:
        lines.append("- Overrides (`--set`): " + ", ".join(f"`{o}`" for o in s["overrides"]))
    for preset, changed in s["preset_differences"].items():
        lines.append(f"- {preset} differs from its shipped preset: " + "; ".join(changed))
    for note in s["notes"]:
        lines.append(f"- {note}")
    f = report["figures"]
    lines += [
        "",
        "## Figures",
        "",
        "Training loss of each row's seed-0 run: the loss it optimises (pixel L1 on images or latent L1 on "
        "encoder features), so the curves show convergence, not which row is better.",
        "",
        f"![loss curves]({f['loss_curves']})",
        "",
        f"Seed-0 outputs on the first {min(SAMPLE_ROWS, s['eval_pairs'])} evaluation masks:",
        "",
        f"![samples]({f['samples']})",
        "",
        "D(E(gt) − E(masked)) of each row's seed-0 network: what the mask does to the latent "
        "code, decoded, with the mask as an input channel (alpha) or through mask control:",
        "",
        f"![latent damage]({f['latent_damage']})",
        "",
        "## Runs",
        "",
        "| Run | Train time (s) | Median step (s) | Steps | FID | LPIPS | SSIM | PSNR | Finished |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    reference = [report["lama_row"]] if report.get("lama_row") else []
    for row in [*reference, *rows, report["classical"]]:
        for r in row["runs"]:
            v = _values(r)
            cells = ["n/a" if v[k] is None else fmt.format(v[k]) for k, _, fmt, _ in QUANTITIES]
            if row is report["classical"] or row is report.get("lama_row"):
                cells[:2] = ["—", "—"]  # nothing trained
            steps = (r.get("timing") or {}).get("steps", "—")
            resumed = f" (resumed at step {r['resumed_from_step']})" if r.get("resumed_from_step") else ""
            lines.append(
                f"| `{r['dir']}` | {' | '.join(cells[:2])} | {steps} | {' | '.join(cells[2:])} | {r['finished_at']}{resumed} |"
            )
    lines.append("")
    atomic_write_bytes(out / "report.md", "\n".join(lines).encode("utf-8"))
    write_json_atomic(out / "report.json", finite_json(report))


# --- the command -----------------------------------------------------------------------------------------


def preset_differences(preset: str, config: dict, shipped: dict) -> list[str]:
    """What `--set` changed in a row's model, loss or optimiser against the shipped preset."""
    return [
        change
        for change in config_differences(shipped, config)
        if not change.startswith(("data.", "trainer.", "seed:", "autoencoder:"))
    ]


def notes(
    args: argparse.Namespace, configs: dict, rows: list[dict], pairs: list, metrics: tuple
) -> list[str]:
    """The report's caveats: what is off, what is held out, which checkpoints, which runs were resumed."""
    from latentpaint.training.validation import VAL_METRIC

    found = []
    if "fid" in metrics and len(pairs) < 2:
        found.append("FID is n/a: it needs at least 2 evaluation masks.")
    if args.table == "table-5-2" and any(c["loss"]["perceptual"] == 0 for c in configs.values()):
        found.append("The perceptual loss is off (loss.perceptual=0): these rows are not LaMa's full loss.")
    if args.table == "table-5-2" and args.lama_folder is not None:
        found.append(
            f"Row (0) is the LaMa folder `{args.lama_folder.resolve()}` (for big-lama: the authors' "
            "checkpoint, trained by them on Places2 with LaMa's own budget), predicting the same masks at the "
            "same resolution; its % changes are against row 1."
        )
    if args.data == "builtin" or args.eval_data == "builtin":
        from latentpaint.demo import HELD_OUT

        found.append(f"Built-in photos {', '.join(HELD_OUT)} are held out of training (evaluation only).")
    best = [r["dir"] for row in rows for r in row["runs"] if r.get("checkpoint_kind") == "best"]
    if best:
        found.append(
            f"Evaluated at the best checkpoint by validation ({VAL_METRIC}, LaMa's selection) instead of "
            f"last.ckpt: {', '.join(best)}."
        )
    found += [
        f"{r['dir']} was resumed at step {r['resumed_from_step']} (its log and train time cover every step)."
        for row in rows for r in row["runs"] if r.get("resumed_from_step")
    ]  # fmt: skip
    return found


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    from latentpaint.data.images import IMAGE_FORMATS

    with Image.open(path, formats=IMAGE_FORMATS) as image:  # reads the header only
        return image.size


def _check(args: argparse.Namespace) -> None:
    for flag, value in (
        ("--steps", args.steps),
        ("--seeds", args.seeds),
        ("--size", args.size),
        ("--batch-size", args.batch_size),
    ):
        if value < 1:
            raise LatentpaintError(f"{flag} must be at least 1, not {value}")
    if args.autoencoder_steps is not None and args.autoencoder_steps < 1:
        raise LatentpaintError(f"--autoencoder-steps must be at least 1, not {args.autoencoder_steps}")
    if args.data != "builtin" and not Path(args.data).is_dir():
        raise LatentpaintError(f"training folder {args.data} does not exist (give a folder or 'builtin')")
    if args.lama_folder is not None and args.table != "table-5-2":
        raise LatentpaintError(
            f"--lama-folder adds row (0) of table-5-2 (the authors' checkpoint); {args.table} has no such row"
        )
    if args.autoencoder is not None and args.autoencoder_steps is not None:
        raise LatentpaintError(
            "give --autoencoder (reuse a checkpoint) or --autoencoder-steps (train one), not both"
        )


def run(args: argparse.Namespace) -> int:
    """Runs `latentpaint experiment`."""
    import torch

    from latentpaint.data.datasets import find_pairs
    from latentpaint.evaluation.classical import opencv_inpaint
    from latentpaint.evaluation.metrics import MetricSuite
    from latentpaint.inference.checkpoints import load_training_network
    from latentpaint.inference.inpainter import Inpainter
    from latentpaint.training.config import load_preset
    from latentpaint.training.inpainting import load_autoencoder_state
    from latentpaint.training.validation import best_or_last

    _check(args)
    table = TABLES[args.table]
    args.out.mkdir(parents=True, exist_ok=True)
    # everything a user can get wrong (data, overrides, weight files) is checked before the first step
    train_dir, eval_dir = prepare_datasets(args)
    ae_config, configs = build_configs(args, train_dir)
    pairs = find_pairs(eval_dir)
    accelerator = args.accelerator or ae_config["trainer"]["accelerator"]
    device = "cuda" if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available() else "cpu"
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    suite = MetricSuite(metrics, args.ssim_convention, args.weights_dir, device, args.fid_feature)
    if not suite.metrics:
        raise LatentpaintError("; ".join(suite.errors.values()))
    here = machine(device)
    settings = {
        "eval_data": str(eval_dir),
        "pairs": len(pairs),
        "metrics": list(suite.metrics),
        "ssim_convention": args.ssim_convention,
        "fid_feature": args.fid_feature if "fid" in suite.metrics else None,
    }

    # row (0) needs no training: scored first, so a wrong --lama-folder fails before hours of training
    lama_runs = evaluate_lama_folder(args, settings, pairs, eval_dir, suite, device, here)

    if args.autoencoder is not None:
        load_autoencoder_state(str(args.autoencoder))  # a wrong file fails now
        ae_ckpt = args.autoencoder.resolve()
        ae_text = f"reused `{ae_ckpt}` (not trained by this experiment)"
    else:
        ae_dir = args.out / "autoencoder"
        ae = run_once(ae_dir, ae_config, {}, lambda ckpt: {"timing": _timing(ae_dir)}, "autoencoder")
        ae_ckpt = (ae_dir / "checkpoints" / "last.ckpt").resolve()
        time_s = (ae["timing"] or {}).get("train_time_s")
        ae_text = (
            f"{ae_config['trainer']['max_steps']} steps (MSE), trained here in "
            + ("n/a" if time_s is None else f"{time_s:.3g} s")
            + " (not included in the rows' train times)"
        )

    total = len(table) * args.seeds + 1
    runs: dict[str, list[dict]] = {}
    for i, preset in enumerate(table):
        runs[preset] = []
        for seed in range(args.seeds):
            config = copy.deepcopy(configs[preset])
            config["seed"], config["autoencoder"] = seed, str(ae_ckpt)
            run_dir = args.out / preset / f"seed{seed}"

            def finish(_: Path, run_dir: Path = run_dir) -> dict:
                # a run that validated (data.val) is evaluated at its best checkpoint, as LaMa's best.ckpt
                ckpt, which = best_or_last(run_dir)
                inpainter = Inpainter(load_training_network(ckpt), device=device)
                scores = predict_and_score(inpainter, pairs, eval_dir, run_dir / "predictions", suite)
                return {
                    "timing": _timing(run_dir),
                    "checkpoint": str(ckpt.resolve()),
                    "checkpoint_kind": which,
                    "machine": here,
                    **scores,
                }

            label = f"[{i * args.seeds + seed + 1}/{total}] {preset} seed {seed}"
            record = run_once(run_dir, config, settings, finish, label)
            runs[preset].append({**record, "dir": str(run_dir.relative_to(args.out))})

    classical_dir = args.out / CLASSICAL
    telea = run_once(
        classical_dir,
        None,
        settings,
        lambda _: predict_and_score(opencv_inpaint, pairs, eval_dir, classical_dir / "predictions", suite),
        f"[{total}/{total}] {CLASSICAL}",
    )

    rows, baseline = [], None
    for preset in table:
        row = {"preset": preset, **describe(configs[preset]), "runs": runs[preset]}
        row.update(summarise(runs[preset], baseline))
        baseline = baseline or row["mean"]
        rows.append(row)
    classical = {"preset": CLASSICAL, "runs": [{**telea, "dir": CLASSICAL}]}
    classical.update(summarise(classical["runs"], baseline))

    images = sorted({image for image, _ in pairs})
    sizes = sorted({_image_size(image) for image in images})
    all_machines = [r["machine"] for row in rows for r in row["runs"] if r.get("machine")]
    report = {
        "experiment": args.table,
        "created": _now(),
        "machine": here,
        "run_machines": [m for i, m in enumerate(all_machines) if m not in all_machines[:i]],
        "setup": {
            "steps": configs[table[0]]["trainer"]["max_steps"],
            "batch_size": args.batch_size,
            "size": args.size,
            "mask_preset": ae_config["data"]["mask_preset"],
            "seeds": list(range(args.seeds)),
            "train_data": str(train_dir),
            "eval_data": str(eval_dir),
            "eval_pairs": len(pairs),
            "eval_images": len(images),
            "eval_sizes": ", ".join(f"{w}x{h}" for w, h in sizes),
            "autoencoder": {"checkpoint": str(ae_ckpt), "text": ae_text},
            "overrides": list(args.set),
            "preset_differences": {
                preset: changed
                for preset in table
                if (changed := preset_differences(preset, configs[preset], load_preset(preset)))
            },
            "notes": notes(args, configs, rows, pairs, suite.metrics),
        },
        "metrics": {
            "requested": metrics,
            "ssim_convention": args.ssim_convention,
            "descriptions": suite.descriptions,
            "unavailable": suite.errors,
        },
        "baseline": table[0],
        "rows": rows,
        "lama_row": lama_row(lama_runs, rows[0]["mean"]),
        "classical": classical,
        "figures": write_figures(args.out, table, configs, pairs, eval_dir),
    }
    write_report(args.out, report)
    print(f"wrote {args.out / 'report.md'} and report.json")
    return 0
