"""The experiment's numbers: mean ± std over seeds, % change against row 1, and report.md / report.json."""

from __future__ import annotations

from pathlib import Path

from latentpaint.evaluation.machine import describe_machine
from latentpaint.evaluation.tables import TITLES

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
SAMPLE_ROWS = 4  # evaluation masks shown in samples.png

# table 5.2 row (0): the authors' LaMa checkpoint
LAMA_ROW_DIR = "lama-authors"
LAMA_ROW_NAME = "(0) LaMa, authors' checkpoint"
LAMA_ROW_HINT = (
    "not evaluated: add `--lama-folder big-lama/` (the official release folder, see the README) for the "
    "authors' checkpoint on this evaluation set"
)


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


def lama_row(runs: list[dict] | None, baseline: dict) -> dict | None:
    """The report row of the `--lama-folder` run, with % changes against row 1."""
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


def _cell(row: dict, key: str, fmt: str, baseline: bool) -> str:
    mean, std, change = row["mean"][key], row["std"][key], row["change_pct"][key]
    if mean is None:
        return "n/a"
    text = fmt.format(mean) + (f" ± {fmt.format(std)}" if std is not None else "")
    return text + (f" ({change:+.1f}%)" if change is not None and not baseline else "")


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


def _table(report: dict) -> list[str]:
    """Title, the results table (rows, then the classical floor) and the notes on unavailable metrics."""
    s, rows = report["setup"], report["rows"]
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
    for row in report["classical"]:
        cells = [row["preset"], "classical, no training", "—", "—", "—", "—"]
        cells += [_cell(row, key, fmt, False) for key, _, fmt, _ in QUANTITIES[2:]]
        lines.append("| " + " | ".join(cells) + " |")
    seeds = ", ".join(map(str, s["seeds"]))
    lines += [
        "",
        f"Mean ± sample std over {len(s['seeds'])} seed(s) ({seeds}); a single seed has no std. "
        f"(±x%): change of the mean against row 1 ({rows[0]['preset']}), for every column including train "
        "time.",
        *_floor_sentence(report["classical"]),
    ]
    unavailable = report["metrics"]["unavailable"]
    skipped = [m.upper() for m in METRIC_NAMES if m not in report["metrics"]["requested"]]
    if unavailable or skipped:
        lines.append("")
    lines += [f"- {name.upper()}: n/a, {reason}" for name, reason in unavailable.items()]
    if skipped:
        lines.append(
            f"- {', '.join(skipped)}: n/a, not requested (--metrics {','.join(report['metrics']['requested'])})"
        )
    return lines


def _floor_sentence(classical: list[dict]) -> list[str]:
    """What the classical rows are, and the best of them by FID: the floor any learned model must beat."""
    if not classical:
        return []
    names = ", ".join(row["preset"] for row in classical)
    text = (
        f"The classical rows ({names}: OpenCV's diffusion fills, xphoto's shift-map and FSR fast, "
        "PatchMatch with seed 0; inference/classical.py) fill the same masks without training: the floor "
        "any learned model must beat."
    )
    scored = [row for row in classical if row["mean"].get("fid") is not None]
    if scored:
        best = min(scored, key=lambda row: row["mean"]["fid"])
        text += f" The best of them by FID is {best['preset']} ({best['mean']['fid']:.2f})."
    return [text]


def _setup(report: dict) -> list[str]:
    """The Setup section: budget, data, metric conventions, machine, overrides and notes."""
    s, metrics = report["setup"], report["metrics"]
    descriptions = metrics["descriptions"]
    ssim = f" ({descriptions['ssim']})" if "ssim" in descriptions else ""
    lines = [
        "",
        "## Setup",
        "",
        f"- Step budget: {s['steps']} stage-2 steps per run, batch {s['batch_size']}, {s['size']} px crops, "
        f"{s['mask_preset']} training masks; training data `{s['train_data']}`.",
        f"- Stage-1 autoencoder (shared by all runs): {s['autoencoder']['text']}",
        f"- Evaluation: `{s['eval_data']}`, {s['eval_pairs']} masks on {s['eval_images']} images "
        f"({s['eval_sizes']}), predicted at that resolution; whole-image scores.",
        f"- SSIM convention: {metrics['ssim_convention']}{ssim}",
    ]
    lines += [f"- {name.upper()}: {text}" for name, text in descriptions.items() if name != "ssim"]
    if "fid" in descriptions and s["eval_pairs"] < 1000:
        lines.append(
            f"- FID from {s['eval_pairs']} images is dominated by small-sample bias: compare rows with each "
            "other only, never with published FIDs."
        )
    lines += [
        "- Train time: sum of the per-step wall times of the run (forward, backward, optimiser step; data "
        "loading, checkpoint writes and start-up not included), from its `timing.json`; the median step "
        "leaves out the first (warm-up) step. Every run of a row has the same step budget.",
        f"- Machine: {describe_machine(report['machine'])}; report date {report['created']}.",
    ]
    if len(report["run_machines"]) > 1:
        lines.append(
            "- Runs were finished on different machines, so train times are not comparable: "
            + "; ".join(describe_machine(m) for m in report["run_machines"])
        )
    if s["overrides"]:
        lines.append("- Overrides (`--set`): " + ", ".join(f"`{o}`" for o in s["overrides"]))
    for preset, changed in s["preset_differences"].items():
        lines.append(f"- {preset} differs from its shipped preset: " + "; ".join(changed))
    lines += [f"- {note}" for note in s["notes"]]
    return lines


def _figures(report: dict) -> list[str]:
    f, pairs = report["figures"], report["setup"]["eval_pairs"]
    return [
        "",
        "## Figures",
        "",
        "Training loss of each row's seed-0 run: the loss it optimises (pixel L1 on images or latent L1 on "
        "encoder features), so the curves show convergence, not which row is better.",
        "",
        f"![loss curves]({f['loss_curves']})",
        "",
        f"Seed-0 outputs on the first {min(SAMPLE_ROWS, pairs)} evaluation masks:",
        "",
        f"![samples]({f['samples']})",
        "",
        "D(E(gt) − E(masked)) of each row's seed-0 network: what the mask does to the latent "
        "code, decoded, with the mask as an input channel (alpha) or through mask control:",
        "",
        f"![latent damage]({f['latent_damage']})",
    ]


def _runs(report: dict) -> list[str]:
    """One line per run: its own numbers, step count and when it finished."""
    lines = [
        "",
        "## Runs",
        "",
        "| Run | Train time (s) | Median step (s) | Steps | FID | LPIPS | SSIM | PSNR | Finished |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lama, classical = report.get("lama_row"), report["classical"]
    trained = [(row, False) for row in report["rows"]]
    for row, untrained in [*([(lama, True)] if lama else []), *trained, *((c, True) for c in classical)]:
        for r in row["runs"]:
            v = _values(r)
            cells = ["n/a" if v[k] is None else fmt.format(v[k]) for k, _, fmt, _ in QUANTITIES]
            if untrained:
                cells[:2] = ["—", "—"]  # nothing trained
            steps = (r.get("timing") or {}).get("steps", "—")
            resumed = f" (resumed at step {r['resumed_from_step']})" if r.get("resumed_from_step") else ""
            lines.append(
                f"| `{r['dir']}` | {' | '.join(cells[:2])} | {steps} | {' | '.join(cells[2:])} | {r['finished_at']}{resumed} |"
            )
    return lines


def write_report(out: Path, report: dict) -> None:
    """report.md (the thesis layout plus everything needed to judge it) and report.json."""
    from latentpaint.files import atomic_write_bytes, finite_json, write_json_atomic

    lines = [*_table(report), *_setup(report), *_figures(report), *_runs(report), ""]
    atomic_write_bytes(out / "report.md", "\n".join(lines).encode("utf-8"))
    write_json_atomic(out / "report.json", finite_json(report))
