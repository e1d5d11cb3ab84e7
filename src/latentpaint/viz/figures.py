"""Figures for reports and the demo: loss curves from Lightning's CSV logs, image grids."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from latentpaint.files import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def read_metric(csv_path: str | Path, key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one logged metric from a Lightning CSVLogger `metrics.csv`.

    A resumed run may have logged a step twice (before the kill and after); the last row wins.
    """
    by_step: dict[int, float] = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get(key):
                by_step[int(row["step"])] = float(row[key])
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def _save(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    atomic_write(Path(path), lambda p: p.write_bytes(buffer.getvalue()))


def plot_loss_curves(
    curves: dict[str, tuple[list[int], list[float]]], path: str | Path, ylabel: str = "loss"
) -> None:
    """One line per run: label -> (steps, values); log-scale y, since losses span decades."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, (steps, values) in curves.items():
        if steps:
            ax.plot(steps, values, label=label, linewidth=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, Path(path))


def image_grid(
    rows: list[list[np.ndarray]], titles: list[str], path: str | Path, row_labels: list[str] | None = None
) -> None:
    """A grid of uint8 images (one list per row) with column titles."""
    plt = _pyplot()
    n_rows, n_cols = len(rows), len(titles)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.9 * n_cols, 1.9 * n_rows), squeeze=False)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            ax = axes[r][c]
            ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=8)
            if c == 0 and row_labels:
                ax.set_ylabel(row_labels[r], fontsize=7)
    fig.tight_layout()
    _save(fig, Path(path))
