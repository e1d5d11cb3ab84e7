"""`latentpaint experiment`: the thesis tables rerun, from data and configurations to report.md.

The options are read in experiment_cli.py; the rows of each table and what they are in tables.py; one
resumable run in runs.py; numbers and the markdown in report.py; pictures in figures.py.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from latentpaint.errors import LatentpaintError
from latentpaint.evaluation.figures import write_figures
from latentpaint.evaluation.machine import machine
from latentpaint.evaluation.report import LAMA_ROW_DIR, LAMA_ROW_NAME, lama_row, summarise, write_report
from latentpaint.evaluation.runs import config_differences, now, run_once, timing
from latentpaint.evaluation.tables import TABLES, describe

if TYPE_CHECKING:
    from latentpaint.training.config import RunConfig

# --- data and configurations ------------------------------------------------------------------------------


def prepare_datasets(args: argparse.Namespace) -> tuple[Path, Path]:
    """(training folder, LaMa evaluation folder); 'builtin' keeps data.heldout.HELD_OUT out of training for eval."""
    from latentpaint.data.heldout import prepare_data
    from latentpaint.data.images import save_image

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


def build_configs(args: argparse.Namespace, train_dir: Path) -> tuple[RunConfig, dict[str, RunConfig]]:
    """(stage-1 config, {preset: stage-2 config}) with the experiment's settings, read once before any
    training; every run of a row is its config with its seed and the stage-1 checkpoint."""
    from latentpaint.training.presets import hardware, load_preset

    common = [
        f"data.train={train_dir}", f"data.size={args.size}", f"data.batch_size={args.batch_size}",
        f"data.num_workers={args.num_workers}", f"trainer.progress_bar={str(sys.stderr.isatty()).lower()}",
    ]  # fmt: skip

    def config_for(preset: str, steps: int) -> RunConfig:
        # a few points per curve even for short runs; --set comes last so the user always wins
        every = max(1, min(10, steps // 20))
        sets = [*common, f"trainer.max_steps={steps}", f"trainer.log_every_n_steps={every}", *args.set]
        return load_preset(preset, sets, hardware(accelerator=args.accelerator, devices=args.devices))

    stage2 = {
        preset: _find_perceptual_weights(config_for(preset, args.steps), args.weights_dir)
        for preset in TABLES[args.table]
    }
    return config_for("autoencoder", args.autoencoder_steps or args.steps), stage2


def _find_perceptual_weights(cfg: RunConfig, weights_dir: Path | None) -> RunConfig:
    """`cfg` with loss.perceptual_weights at --weights-dir's file; fails now, not after hours, when it is missing."""
    from latentpaint.losses.perceptual import find_perceptual_weights, resolve_weights

    loss = cfg.loss
    if loss.perceptual <= 0:
        return cfg
    if loss.perceptual_weights is None and weights_dir is not None:
        found = find_perceptual_weights(loss.perceptual_backbone, weights_dir)
        cfg = cfg.updated({"loss": {"perceptual_weights": found}})
    resolve_weights(cfg.loss.perceptual_backbone, cfg.loss.perceptual_weights)
    return cfg


# --- prediction and scoring ------------------------------------------------------------------------------


def predict_and_score(
    predict: Callable, pairs: list[tuple[Path, Path]], eval_dir: Path, pred_dir: Path, suite
) -> dict:
    """Writes `predict(image, mask)` for every pair as pred_dir/NAME_maskNNN.png and scores it; MetricSuite totals."""
    import torch

    from latentpaint.data.images import load_mask, load_rgb, save_image
    from latentpaint.models.apply import image_to_tensor

    suite.reset()
    for image_path, mask_path in pairs:
        image, mask = load_rgb(image_path), load_mask(mask_path)
        result = predict(image, mask)
        save_image(pred_dir / mask_path.relative_to(eval_dir).with_suffix(".png"), result)
        suite.update(image_to_tensor(result), image_to_tensor(image), torch.from_numpy(mask)[None, None])
    results = suite.compute()
    return {"total": results["total"], "count": results["count"]}


@dataclass
class Evaluation:
    """The one evaluation set every run is scored on, and where and how it is scored."""

    pairs: list[tuple[Path, Path]]
    eval_dir: Path
    suite: object  # MetricSuite
    device: str
    machine: dict
    settings: dict  # what a finished run's done.json must match to be skipped

    def score(self, predict: Callable, run_dir: Path) -> dict:
        return predict_and_score(predict, self.pairs, self.eval_dir, run_dir / "predictions", self.suite)

    def score_network(self, network, run_dir: Path, checkpoint: Path) -> dict:
        from latentpaint.inference.inpainter import Inpainter

        scores = self.score(Inpainter(network, device=self.device), run_dir)
        return {"checkpoint": str(checkpoint.resolve()), "machine": self.machine, **scores}


def open_evaluation(args: argparse.Namespace, eval_dir: Path, accelerator: str) -> Evaluation:
    """Finds the evaluation pairs and builds the metrics; a metric that cannot run at all fails here."""
    import torch

    from latentpaint.data.datasets import find_pairs
    from latentpaint.metrics.suite import MetricSuite

    pairs = find_pairs(eval_dir)
    device = "cuda" if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available() else "cpu"
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    suite = MetricSuite(metrics, args.ssim_convention, args.weights_dir, device, args.fid_feature)
    if not suite.metrics:
        raise LatentpaintError("; ".join(suite.errors.values()))
    settings = {
        "eval_data": str(eval_dir),
        "pairs": len(pairs),
        "metrics": list(suite.metrics),
        "ssim_convention": args.ssim_convention,
        "fid_feature": args.fid_feature if "fid" in suite.metrics else None,
    }
    return Evaluation(pairs, eval_dir, suite, device, machine(device), settings)


# --- the runs ---------------------------------------------------------------------------------------------


def evaluate_lama_folder(args: argparse.Namespace, ev: Evaluation) -> list[dict] | None:
    """Row (0) of table-5-2: `--lama-folder` inpaints and is scored on the same evaluation set (resumable).

    Runs before any training, so a wrong folder fails at once. None without the option.
    """
    from latentpaint.inference.checkpoints import load_network

    if args.lama_folder is None:
        return None
    folder = args.lama_folder.resolve()
    run_dir = args.out / LAMA_ROW_DIR

    def finish(_: Path) -> dict:
        return {"timing": None, **ev.score_network(load_network(folder), run_dir, folder)}

    record = run_once(run_dir, None, {**ev.settings, "lama_folder": str(folder)}, finish, LAMA_ROW_NAME)
    return [{**record, "dir": LAMA_ROW_DIR}]


def train_autoencoder(args: argparse.Namespace, cfg: RunConfig) -> tuple[Path, str]:
    """(stage-1 checkpoint, what the report says about it): `--autoencoder` reused, or trained once."""
    from latentpaint.training.inpainting import load_autoencoder_state

    if args.autoencoder is not None:
        load_autoencoder_state(str(args.autoencoder))  # a wrong file fails now
        ckpt = args.autoencoder.resolve()
        return ckpt, f"reused `{ckpt}` (not trained by this experiment)"
    ae_dir = args.out / "autoencoder"
    record = run_once(ae_dir, cfg, {}, lambda ckpt: {"timing": timing(ae_dir)}, "autoencoder")
    time_s = (record["timing"] or {}).get("train_time_s")
    text = (
        f"{cfg.trainer.max_steps} steps (MSE), trained here in "
        + ("n/a" if time_s is None else f"{time_s:.3g} s")
        + " (not included in the rows' train times)"
    )
    return (ae_dir / "checkpoints" / "last.ckpt").resolve(), text


def train_rows(
    args: argparse.Namespace, configs: dict, ae_ckpt: Path, ev: Evaluation
) -> dict[str, list[dict]]:
    """{preset: one record per seed}: every row of the table trained, predicted and scored (resumable)."""
    from latentpaint.inference.checkpoints import load_training_network
    from latentpaint.training.validation import best_or_last

    table = TABLES[args.table]
    total = len(table) * args.seeds
    runs: dict[str, list[dict]] = {}
    for i, preset in enumerate(table):
        runs[preset] = []
        for seed in range(args.seeds):
            cfg = configs[preset].updated({"seed": seed, "autoencoder": str(ae_ckpt)})
            run_dir = args.out / preset / f"seed{seed}"

            def finish(_: Path, run_dir: Path = run_dir) -> dict:
                # a run that validated (data.val) is evaluated at its best checkpoint, as LaMa's best.ckpt
                ckpt, which = best_or_last(run_dir)
                scores = ev.score_network(load_training_network(ckpt), run_dir, ckpt)
                return {"timing": timing(run_dir), "checkpoint_kind": which, **scores}

            label = f"[{i * args.seeds + seed + 1}/{total}] {preset} seed {seed}"
            record = run_once(run_dir, cfg, ev.settings, finish, label)
            runs[preset].append({**record, "dir": str(run_dir.relative_to(args.out))})
    return runs


def score_classical(args: argparse.Namespace, ev: Evaluation) -> dict[str, dict]:
    """{method: record}: each classical fill of `--classical` on the same masks, the floor rows (nothing to
    train; PatchMatch with seed 0), each in OUT/METHOD and skipped when done."""
    from latentpaint.inference.classical import fill_function

    records = {}
    for k, name in enumerate(args.classical):
        run_dir, label = args.out / name, f"[classical {k + 1}/{len(args.classical)}] {name}"
        fill = fill_function(name)
        records[name] = run_once(
            run_dir, None, ev.settings, lambda _, f=fill, d=run_dir: ev.score(f, d), label
        )
    return records


# --- the report -------------------------------------------------------------------------------------------


def preset_differences(cfg: RunConfig, shipped: RunConfig) -> list[str]:
    """What `--set` changed in a row's model, loss or optimiser against the shipped preset."""
    return [
        change
        for change in config_differences(shipped, cfg)
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
    if args.table == "table-5-2" and any(c.loss.perceptual == 0 for c in configs.values()):
        found.append("The perceptual loss is off (loss.perceptual=0): these rows are not LaMa's full loss.")
    if args.table == "table-5-2" and args.lama_folder is not None:
        found.append(
            f"Row (0) is the LaMa folder `{args.lama_folder.resolve()}` (for big-lama: the authors' "
            "checkpoint, trained by them on Places2 with LaMa's own budget), predicting the same masks at the "
            "same resolution; its % changes are against row 1."
        )
    if args.data == "builtin" or args.eval_data == "builtin":
        from latentpaint.data.heldout import HELD_OUT

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


def table_rows(table: tuple[str, ...], runs: dict, classical: dict) -> tuple[list[dict], list[dict]]:
    """(one row per preset with mean/std/% change against row 1, one row per classical fill)."""
    rows, baseline = [], None
    for preset in table:
        row = {"preset": preset, **describe(preset), "runs": runs[preset]}
        row.update(summarise(runs[preset], baseline))
        baseline = baseline or row["mean"]
        rows.append(row)
    floor = []
    for name, record in classical.items():
        floor.append({"preset": name, "runs": [{**record, "dir": name}]})
        floor[-1].update(summarise(floor[-1]["runs"], baseline))
    return rows, floor


def setup(args: argparse.Namespace, configs: dict, ae: tuple[Path, str], dirs: tuple[Path, Path], ev) -> dict:
    """The report's Setup: budget, data, evaluation set, autoencoder, overrides (notes come later)."""
    from latentpaint.training.presets import load_preset

    table = TABLES[args.table]
    images = sorted({image for image, _ in ev.pairs})
    sizes = sorted({_image_size(image) for image in images})
    return {
        "steps": configs[table[0]].trainer.max_steps,
        "batch_size": args.batch_size,
        "size": args.size,
        "mask_preset": configs[table[0]].data.mask_preset,
        "seeds": list(range(args.seeds)),
        "train_data": str(dirs[0]),
        "eval_data": str(dirs[1]),
        "eval_pairs": len(ev.pairs),
        "eval_images": len(images),
        "eval_sizes": ", ".join(f"{w}x{h}" for w, h in sizes),
        "autoencoder": {"checkpoint": str(ae[0]), "text": ae[1]},
        "overrides": list(args.set),
        "preset_differences": {
            preset: changed
            for preset in table
            if (changed := preset_differences(configs[preset], load_preset(preset)))
        },
    }


def run_experiment(args: argparse.Namespace) -> int:
    """Trains and scores every run of `args.table` (skipping finished ones) and writes the report."""
    from latentpaint.files import check_output_folder

    table = TABLES[args.table]
    check_output_folder(args.out, "--out")
    args.out.mkdir(parents=True, exist_ok=True)
    # everything a user can get wrong (data, overrides, weight files) is checked before the first step
    train_dir, eval_dir = prepare_datasets(args)
    ae_config, configs = build_configs(args, train_dir)
    ev = open_evaluation(args, eval_dir, args.accelerator or ae_config.trainer.accelerator)
    # row (0) needs no training: scored first, so a wrong --lama-folder fails before hours of training
    lama_runs = evaluate_lama_folder(args, ev)
    ae = train_autoencoder(args, ae_config)
    runs = train_rows(args, configs, ae[0], ev)
    rows, classical = table_rows(table, runs, score_classical(args, ev))

    all_machines = [r["machine"] for row in rows for r in row["runs"] if r.get("machine")]
    report = {
        "experiment": args.table,
        "created": now(),
        "machine": ev.machine,
        "run_machines": [m for i, m in enumerate(all_machines) if m not in all_machines[:i]],
        "setup": {
            **setup(args, configs, ae, (train_dir, eval_dir), ev),
            "notes": notes(args, configs, rows, ev.pairs, ev.suite.metrics),
        },
        "metrics": {
            "requested": [m.strip() for m in args.metrics.split(",") if m.strip()],
            "ssim_convention": args.ssim_convention,
            "descriptions": ev.suite.descriptions,
            "unavailable": ev.suite.errors,
        },
        "baseline": table[0],
        "rows": rows,
        "lama_row": lama_row(lama_runs, rows[0]["mean"]),
        "classical": classical,
        "figures": write_figures(args.out, table, configs, ev.pairs, eval_dir, args.classical),
    }
    write_report(args.out, report)
    print(f"wrote {args.out / 'report.md'} and report.json")
    return 0
