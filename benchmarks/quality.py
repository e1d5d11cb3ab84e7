"""Quality of the CPU recipe: train it at a given budget, score it on held-out photos against every classical fill.

    python benchmarks/quality.py --out runs/quality                  # the recipe as shipped (about 1 h, 2 cores)
    python benchmarks/quality.py --out runs/q --ae-steps 200 --steps 200   # a smoke run
    python benchmarks/quality.py --out runs/quality --only-eval       # rescore finished runs

1. `latentpaint data photos` assembles the training photos (scene-level train / held-out split).
2. Stage 1: `recipe-autoencoder` preset. Stage 2: the `recipe` preset (or `--preset`), per seed.
3. Held-out evaluation at 256 px with LaMa's thick_256 masks: `--crops` crops per held-out photo from
   (a) the held-out scenes of step 1 and (b) every photo under `--heldout` folders. The default `--heldout`
   are desktop-wallpaper packages (Debian: mate-backgrounds, ukui-wallpapers), which no training source
   uses. Every classical fill of inference/classical.py fills the same holes (`--classical`, default all:
   OpenCV Telea, Navier-Stokes, xphoto's shift-map and FSR fast, PatchMatch with seed 0). SSIM (LaMa
   convention), PSNR, FID (fid-helper Inception) and LPIPS when `--weights-dir` holds the VGG file, and the
   seconds per image of each fill (models: the whole forward pass, one image at a time).
Writes OUT/quality.json and OUT/quality.md (+ a sample grid) and prints the table with the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from latentpaint.errors import LatentpaintError
from latentpaint.inference.classical import CLASSICAL_METHODS, require_backend

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

WALLPAPERS = ("/usr/share/backgrounds/mate/nature", "/usr/share/backgrounds")
# wallpapers that are drawings, logos or abstract renderings, not photographs
NOT_PHOTOS = {
    "fluent-color",
    "focal-ubuntukylin",
    "rollpaper",
    "warty-final-ubuntu",
    "lomiri-default-background",
}


def heldout_photos(dirs: list[Path]) -> list[Path]:
    from latentpaint.data.images import IMAGE_EXTENSIONS

    found: dict[str, Path] = {}
    for folder in dirs:
        if folder.is_dir():
            for path in sorted(
                folder.iterdir()
            ):  # not recursive: the wallpaper roots hold other packages' folders
                if path.suffix.lower() in IMAGE_EXTENSIONS and path.stem not in NOT_PHOTOS:
                    found.setdefault(path.stem, path)
    return list(found.values())


def heldout_crops(paths: list[Path], size: int, per_photo: int, seed: int):
    """`per_photo` random size x size crops of each photo (short side resized to 2 * size) + thick masks."""
    from latentpaint.data.datasets import fit_short_side
    from latentpaint.data.images import load_rgb
    from latentpaint.masks import draw_masks, get_mask_generator

    generator = get_mask_generator("thick_256", size)
    names, images, masks = [], [], []
    for index, path in enumerate(paths):
        image = fit_short_side(load_rgb(path), 2 * size, 2 * size)
        rng = np.random.default_rng([seed, index])
        for k in range(per_photo):
            top = int(rng.integers(image.shape[0] - size + 1))
            left = int(rng.integers(image.shape[1] - size + 1))
            names.append(f"{path.stem}_{k}")
            images.append(np.ascontiguousarray(image[top : top + size, left : left + size]))
            masks.append(draw_masks(generator, size, 1, rng)[0])
    return names, np.stack(images), np.stack(masks)


def score(fills: np.ndarray, images: np.ndarray, masks: np.ndarray, weights_dir: str | None) -> dict:
    from latentpaint.metrics.suite import MetricSuite

    metrics = ("ssim", "psnr", "fid") + (("lpips",) if weights_dir else ())
    suite = MetricSuite(metrics, weights_dir=weights_dir)

    def batch(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255

    for i in range(0, len(images), 16):
        part = slice(i, i + 16)
        suite.update(batch(fills[part]), batch(images[part]), torch.from_numpy(masks[part])[:, None].float())
    total = suite.compute()["total"]
    return {k: total[k] for k in ("ssim", "psnr", "fid", "lpips") if k in total}


def fill_with_model(checkpoint: Path, images: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, float]:
    """(filled images, seconds per image)."""
    from latentpaint.inference.checkpoints import load_network
    from latentpaint.inference.inpainter import Inpainter

    return timed(Inpainter(load_network(checkpoint)).predict_array, images, masks)


def timed(fill, images: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, float]:
    """(`fill` of every image, wall seconds per image)."""
    start = time.perf_counter()
    filled = np.stack([fill(i, m) for i, m in zip(images, masks)])
    return filled, (time.perf_counter() - start) / max(1, len(images))


@torch.no_grad()
def autoencoder_psnr(checkpoint: Path, images: np.ndarray) -> float:
    """Stage 1's held-out reconstruction PSNR: mean over crops of PSNR(D(E(x)), x)."""
    from latentpaint.inference.checkpoints import read_training_checkpoint, strip_prefix
    from latentpaint.metrics.suite import psnr
    from latentpaint.models.network import ModelSpec

    config, state = read_training_checkpoint(checkpoint)
    generator = ModelSpec.from_dict(config["model"], checkpoint).autoencoder_generator()
    generator.load_state_dict(strip_prefix(state, "generator."))
    generator.eval()
    values = []
    for i in range(0, len(images), 16):
        x = torch.from_numpy(images[i : i + 16]).permute(0, 3, 1, 2).float() / 255
        values.append(psnr(generator.decoder(generator.encoder(x)).clamp(0, 1), x))
    return float(torch.cat(values).mean())


def fill_with_classical(method: str, images: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, float]:
    """(filled images, seconds per image) of a classical method of the registry (e.g. "opencv-fsr")."""
    from latentpaint.inference.classical import fill_function

    return timed(fill_function(method), images, masks)


def train_recipe(args, photos: Path) -> dict[str, Path]:
    """Stage 1 once, stage 2 per seed; finished runs are reused (the runs are resumable too)."""
    from latentpaint.training.callbacks import last_checkpoint
    from latentpaint.training.presets import load_preset
    from latentpaint.training.runner import train

    def run(name: str, preset: str, sets: list[str]) -> Path:
        out = args.out / name
        final = last_checkpoint(out)
        if (out / "done").is_file():
            return final
        cfg = load_preset(preset, [f"data.train={photos / 'train'}", *sets])
        resume = final if final.is_file() else None
        start = time.perf_counter()
        train(cfg, out, resume)
        (out / "done").write_text(f"{time.perf_counter() - start:.0f} s wall for this invocation\n")
        return final

    ae_sets = [f"trainer.max_steps={args.ae_steps}"] if args.ae_steps else []
    autoencoder = args.autoencoder or run("autoencoder", "recipe-autoencoder", ae_sets)
    runs = {}
    for seed in args.seeds:
        sets = [f"autoencoder={autoencoder}", f"seed={seed}"] + (
            [f"trainer.max_steps={args.steps}"] if args.steps else []
        )
        sets += bank_for(args, photos, load_preset(args.preset, sets), seed)
        runs[f"{args.preset} seed {seed}"] = run(f"{args.preset}-seed{seed}", args.preset, sets)
    return runs


def bank_for(args, photos: Path, cfg, seed: int) -> list[str]:
    """A texture prefill is drawn once into a bank (data/bank.py) that stage 2 trains from: computed per
    batch it would set the pace of the step. Returns the `--set` that points the run at it."""
    from latentpaint.data.bank import build_bank
    from latentpaint.models.prefill import HOST_PREFILLS

    prefill, d = cfg.model.prefill, cfg.data
    if prefill not in HOST_PREFILLS or prefill == "telea" or args.bank == 0:  # Telea keeps up with the step
        return []
    path = args.out / f"bank-{prefill}-{d.size}px-{args.bank}-seed{seed}.npz"
    if not path.is_file():
        report = build_bank(
            photos / "train", path, d.size, args.bank, d.mask_preset, prefill, seed, workers=2
        )
        path.with_suffix(".json").write_text(json.dumps(report))  # its cost, for the model card
        print(f"bank {path.name}: {report['samples']} samples in {report['seconds']:.0f} s")
    return [f"data.train={path}"]


def timing(run_dir: Path) -> dict:
    """The run's timing.json (training.callbacks.StepTimer): steps, train_time_s, median_step_s; {} if absent."""
    path = run_dir / "timing.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def write_grid(path: Path, images, masks, columns: dict[str, np.ndarray], rows: int = 6) -> None:
    from latentpaint.data.images import save_image

    picks = np.linspace(0, len(images) - 1, rows).astype(int)
    lines = []
    for i in picks:
        masked = images[i].copy()
        masked[masks[i] > 0] = 255
        lines.append(
            np.concatenate([masked] + [fills[i] for fills in columns.values()] + [images[i]], axis=1)
        )
    save_image(path, np.concatenate(lines, axis=0))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/quality"))
    p.add_argument("--preset", default="recipe", help="stage-2 preset (default: recipe)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--ae-steps", type=int, help="override the stage-1 steps of recipe-autoencoder")
    p.add_argument("--steps", type=int, help="override the stage-2 steps of the preset")
    p.add_argument("--autoencoder", type=Path, help="a finished stage-1 checkpoint: stage 1 is not trained")
    p.add_argument("--bank", type=int, default=3000,
                   help="samples drawn once for a texture prefill (data/bank.py; default 3000, 0: none)")  # fmt: skip
    p.add_argument("--heldout", nargs="*", default=list(WALLPAPERS), help="extra held-out photo folders")
    p.add_argument("--crops", type=int, default=4, help="crops per held-out photo (default 4)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--weights-dir", help="folder with vgg16-397923af.pth for LPIPS")
    p.add_argument(
        "--model", action="append", default=[], help="also score this model (release/ckpt), repeatable"
    )
    p.add_argument(
        "--classical", default=",".join(CLASSICAL_METHODS),
        help=f"classical fills to score, comma-separated (default: all: {','.join(CLASSICAL_METHODS)})",
    )  # fmt: skip
    p.add_argument("--only-eval", action="store_true", help="score existing runs, train nothing")
    p.add_argument("--ship", type=Path, help="write the first recipe run as a release + MODEL_CARD.md here")
    args = p.parse_args()
    args.classical = [m.strip() for m in args.classical.split(",") if m.strip()]
    try:  # an unknown name or a missing library fails now, not after an hour of training
        for method in args.classical:
            require_backend(method)
    except LatentpaintError as exc:
        sys.exit(f"quality.py: {exc}")
    if args.ship and "opencv-telea" not in args.classical:
        sys.exit("quality.py: --ship compares with OpenCV Telea: keep opencv-telea in --classical")
    torch.manual_seed(0)

    from latentpaint.data.photos import assemble

    photos = args.out / "photos"
    if not (photos / "sources.json").is_file():
        assemble(photos, Path("/usr/share/doc/opencv-doc/examples"), 0.15, seed=0)
    runs = {} if args.only_eval and not (args.out / "autoencoder").is_dir() else train_recipe(args, photos)
    for model in args.model:
        runs[Path(model).name] = Path(model)

    paths = heldout_photos([photos / "heldout", *map(Path, args.heldout)])
    names, images, masks = heldout_crops(paths, args.size, args.crops, seed=0)
    print(f"held-out: {len(images)} crops of {len(paths)} photos, mean mask area {masks.mean():.3f}")
    stage1 = args.autoencoder or args.out / "autoencoder" / "checkpoints" / "last.ckpt"
    stage1_psnr = autoencoder_psnr(stage1, images) if stage1.is_file() else None
    if stage1_psnr is not None:
        print(f"stage 1 held-out reconstruction PSNR: {stage1_psnr:.2f} dB")
    fills, seconds = {}, {}
    for method in args.classical:
        title = CLASSICAL_METHODS[method].title
        fills[title], seconds[title] = fill_with_classical(method, images, masks)
    for name, checkpoint in runs.items():
        fills[name], seconds[name] = fill_with_model(checkpoint, images, masks)
    results = {}
    for name, filled in fills.items():
        results[name] = score(filled, images, masks, args.weights_dir)
        run_dir = runs[name].parent.parent if name in runs else None
        results[name]["median_step_s"] = timing(run_dir).get("median_step_s") if run_dir else None
        results[name]["s_per_image"] = seconds[name]
        print(name, {k: round(v, 4) for k, v in results[name].items() if v is not None})

    args.out.mkdir(parents=True, exist_ok=True)
    write_grid(args.out / "samples.png", images, masks, fills)
    report = {"machine": machine(), "heldout_photos": [str(q) for q in paths], "crops": len(images),
              "mask_area": float(masks.mean()), "stage1_psnr": stage1_psnr, "results": results}  # fmt: skip
    (args.out / "quality.json").write_text(json.dumps(report, indent=2))
    lines = [f"Machine: {report['machine']}", "", f"{len(images)} crops of {len(paths)} held-out photos, "
             f"256 px, thick_256 masks (mean area {masks.mean():.3f}); stage 1 reconstructs them at "
             f"{stage1_psnr or float('nan'):.2f} dB", "",
             "| method | SSIM | PSNR | FID | LPIPS | s / image | median step (s) |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in results.items():
        cells = [
            f"{r[k]:.4f}" if k == "ssim" else f"{r[k]:.2f}" if k in r else "–"
            for k in ("ssim", "psnr", "fid")
        ]
        cells.append(f"{r['lpips']:.4f}" if "lpips" in r else "–")
        cells.append(f"{r['s_per_image']:.3f}")
        cells.append(f"{r['median_step_s']:.3f}" if r.get("median_step_s") else "–")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    (args.out / "quality.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.ship:
        name = next(n for n in runs if n.startswith(args.preset))
        ship(args, runs[name], name, report, "\n".join(lines[2:]))
    return 0


def describe_run(cfg) -> str:
    """What a stage-2 run is, from its `RunConfig` (so the model card never describes another recipe)."""
    m, loss, optim = cfg.model, cfg.loss, cfg.optim
    terms = {"l1_known": "L1 known", "l1_missing": "L1 hole", "adversarial": "GAN", "feature_matching": "FM"}
    weights = {k: getattr(loss, k) for k in terms}
    pixel = ", ".join(f"{label} {weights[k]:g}" for k, label in terms.items() if weights[k] > 0)
    losses = {"pixel": pixel, "latent": f"latent L1 {loss.latent_weight:g}"}
    used = [losses[k] for k in ("pixel", "latent") if loss.mode in (k, "both")]
    output = {"direct": "D(R(z))", "residual": "prefill + D(R(z)) - D(z)"}[m.output]
    return (
        f"generator overrides {m.overrides}; "
        f"{'frozen' if m.freeze_autoencoder else 'trained'} encoder/decoder, mask {m.mask_mode}, "
        f"{m.prefill} prefill of the hole, output {output}, {m.refiner_init} refiner start; "
        f"losses: {'; '.join(used)}; {cfg.trainer.max_steps} steps, {optim.schedule} schedule, "
        f"clipping {cfg.trainer.gradient_clip_val}, EMA {optim.ema_decay}"
    )


def goal_verdict(ours: dict, classical: dict) -> str:
    """The model card's plain sentence: the model against every classical fill, and the goal (an FID at
    least 5% below the best classical fill's, an SSIM at least Telea's)."""
    from latentpaint.evaluation.classical import worse_metrics

    lost = {n: w for n, r in classical.items() if (w := worse_metrics(ours, r))}
    best = min(classical, key=lambda n: classical[n]["fid"])
    fid, telea_ssim = classical[best]["fid"], classical["OpenCV Telea"]["ssim"]
    if lost:
        worse = "; ".join(f"{n} ({', '.join(w)})" for n, w in lost.items())
        plain = f"**This model is worse than {worse} on this held-out set.** "
    else:
        plain = "This model is better than every classical fill on SSIM, PSNR and FID on this held-out set. "
    met = ours["fid"] <= 0.95 * fid and ours["ssim"] >= telea_ssim
    gain = 100 * (1 - ours["fid"] / fid)
    return plain + (
        f"It {'meets' if met else 'does **not** meet'} the goal of an FID at least 5% below the best classical "
        f"fill's ({best}: {fid:.2f}; this model {ours['fid']:.2f}, {abs(gain):.1f}% "
        f"{'lower' if gain >= 0 else 'higher'}) with an SSIM at least Telea's ({ours['ssim']:.4f} vs {telea_ssim:.4f})."
    )


def ship(args, checkpoint: Path, name: str, report: dict, table: str) -> None:
    """The release folder + a model card with data, budget, command and held-out scores."""
    from latentpaint.inference.checkpoints import load_network, save_release
    from latentpaint.training.config import RunConfig

    run_dir = checkpoint.parent.parent
    cfg = RunConfig.read(yaml.safe_load((run_dir / "config.yaml").read_text()), str(run_dir / "config.yaml"))
    # the held-out scores travel in config.json, so summaries (`latentpaint demo`) can state them
    keys = ("ssim", "psnr", "fid")
    titles = {method.title for method in CLASSICAL_METHODS.values()}
    classical = {n: {k: r[k] for k in keys} for n, r in report["results"].items() if n in titles}
    ours = {k: report["results"][name][k] for k in keys}
    heldout = {"crops": report["crops"], "opencv_telea": classical["OpenCV Telea"], "model": ours,
               "classical": classical}  # fmt: skip
    save_release(
        load_network(checkpoint),
        args.ship,
        preset=args.preset,
        source="benchmarks/quality.py",
        heldout=heldout,
    )
    sources = json.loads((args.out / "photos" / "sources.json").read_text())
    train_photos = [p for p in sources["photos"] if p["split"] == "train"]
    origins = sorted({p["source"].split(" ")[0] for p in train_photos})
    s2 = timing(run_dir).get("train_time_s")
    if args.autoencoder:
        budget = f"stage 1 reused from `{args.autoencoder}` (`recipe-autoencoder`) + "
    else:
        budget = f"stage 1 {timing(args.out / 'autoencoder').get('train_time_s') or 0:.0f} s + "
    bank = sorted(args.out.glob(f"bank-{cfg.model.prefill}-*.json"))
    if bank:
        budget += (
            f"drawing the {cfg.model.prefill} bank {json.loads(bank[0].read_text())['seconds']:.0f} s + "
        )
    verdict = goal_verdict(ours, classical)
    card = f"""# latentpaint default model

The model `latentpaint predict`, `latentpaint serve` and `Inpainter.from_pretrained("default")` use when no
`--model` is given. It is the CPU recipe of docs/quality.md: the thesis generator (LaMa-Fourier at ngf 8)
with {describe_run(cfg)}; stage 1 `recipe-autoencoder`, stage 2 `{args.preset}`.

- Data: {len(train_photos)} training photos ({", ".join(origins)}), listed with source and licence by
  `latentpaint data photos` (sources.json); held-out scenes and desktop wallpapers were never trained on.
- Budget: {budget}stage 2 {s2 or 0:.0f} s of optimisation steps on {report["machine"]["cpu"]}
  ({report["machine"]["cores"]} cores, torch {report["machine"]["torch"]}); step time measured while other
  jobs shared the machine, so the wall time is an upper bound.
- Command: `python benchmarks/quality.py --out runs/quality --preset {args.preset} --ship src/latentpaint/weights/default`
- Masks it was trained for: LaMa's `{cfg.data.mask_preset}` preset at {cfg.data.size} px crops;
  evaluated at 256 px.

## Held-out scores

{table}

{verdict}
Scores are whole-image (known pixels are exact); FID over {report["crops"]} crops is a small-sample FID and
only comparable within this table.
"""
    (args.ship / "MODEL_CARD.md").write_text(card)
    print(f"shipped {checkpoint} -> {args.ship}")


if __name__ == "__main__":
    sys.exit(main())
