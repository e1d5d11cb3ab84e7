"""The experiment's figures: loss curves, a grid of seed-0 outputs and the latent damage of each row."""

from __future__ import annotations

from pathlib import Path

from latentpaint.evaluation.report import SAMPLE_ROWS
from latentpaint.evaluation.tables import loss_curve_key


def _masked(image, mask):
    import numpy as np

    return (image * (1 - mask[..., None])).astype(np.uint8)


def write_figures(
    out: Path, table: tuple[str, ...], configs: dict, pairs: list, eval_dir: Path, classical: tuple[str, ...]
) -> dict:
    """loss_curves.png, samples.png (rows, then the `classical` fills) and latent_damage.png beside the
    report (`configs`: {preset: RunConfig}); returns their names."""
    from latentpaint.data.images import load_mask, load_rgb
    from latentpaint.inference.checkpoints import load_training_network
    from latentpaint.inference.inpainter import Inpainter
    from latentpaint.viz.figures import image_grid, plot_loss_curves, read_metric

    curves = {}
    for preset in table:
        key, what = loss_curve_key(preset)
        csv = out / preset / "seed0" / "logs" / "metrics.csv"
        curves[f"{preset}: {what}"] = read_metric(csv, key) if csv.is_file() else ([], [])
    plot_loss_curves(
        curves,
        out / "loss_curves.png",
        ylabel="training loss, seed 0\n(pixel L1 and latent L1 are different losses)",
    )

    rows, labels = [], []
    for image_path, mask_path in pairs[:SAMPLE_ROWS]:
        image, mask = load_rgb(image_path), load_mask(mask_path)
        name = mask_path.relative_to(eval_dir).with_suffix(".png")
        outputs = [load_rgb(out / p / "seed0" / "predictions" / name) for p in table]
        floor = [load_rgb(out / method / "predictions" / name) for method in classical]
        rows.append([_masked(image, mask), *outputs, *floor, image])
        labels.append(name.stem)
    image_grid(rows, ["masked input", *table, *classical, "ground truth"], out / "samples.png", labels)

    image_path, mask_path = pairs[0]
    image, mask = load_rgb(image_path), load_mask(mask_path)
    checkpoints = [out / p / "seed0" / "checkpoints" / "last.ckpt" for p in table]
    damage = [Inpainter(load_training_network(c)).latent_damage(image, mask) for c in checkpoints]
    titles = [f"{p}\n({configs[p].model.mask_mode} mask)" for p in table]
    image_grid(
        [[_masked(image, mask), *damage, image]],
        ["masked input", *titles, "ground truth"],
        out / "latent_damage.png",
        [mask_path.stem],
    )
    return {"loss_curves": "loss_curves.png", "samples": "samples.png", "latent_damage": "latent_damage.png"}
