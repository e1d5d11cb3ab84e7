"""`latentpaint experiment` end to end at 32 px, 2 steps per run: report, figures, skip, resume."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from latentpaint.cli import main
from latentpaint.data.images import save_image
from latentpaint.evaluation.tables import CLASSICAL, PRESETS, TABLES
from latentpaint.inference.checkpoints import load_torch_file
from latentpaint.training import runner
from latentpaint.training.config import RunConfig
from latentpaint.training.presets import apply_overrides, load_preset

TABLE_5_1 = ("pixel-alpha", "pixel-control", "latent-alpha", "latent-control")
FAST = [
    "--steps", "2", "--size", "32", "--batch-size", "2", "--num-workers", "0",
    "--metrics", "ssim,psnr,fid", "--fid-feature", "stand-in", "--accelerator", "cpu",
]  # fmt: skip


def synthetic_photos(folder: Path, count: int, size: int, seed: int) -> Path:
    """Smooth colour gradients with a few discs: enough structure for masks and metrics, no files needed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    for i in range(count):
        image = np.stack([x * rng.uniform(0.2, 1), y * rng.uniform(0.2, 1), (x + y) / 2], axis=-1)
        for _ in range(3):
            cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.2)
            image[(y - cy) ** 2 + (x - cx) ** 2 < r**2] = rng.uniform(0, 1, 3)
        save_image(folder / f"photo{i}.png", (image * 255).astype(np.uint8))
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    """(training folder, LaMa evaluation folder of 4 images at 32 px written by `latentpaint masks`)."""
    root = tmp_path_factory.mktemp("data")
    train = synthetic_photos(root / "train", 4, 48, seed=0)
    photos = synthetic_photos(root / "eval_photos", 4, 48, seed=1)
    eval_dir = root / "eval"
    assert (
        main(
            [
                "masks",
                "--preset",
                "thick_256",
                "--images",
                str(photos),
                "--out",
                str(eval_dir),
                "--size",
                "32",
            ]
        )
        == 0
    )
    return train, eval_dir


def done_markers(out: Path) -> dict[str, float]:
    return {p.parent.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in out.rglob("done.json")}


@pytest.mark.slow
def test_table_5_1_end_to_end_then_skips_finished_runs_and_resumes_a_killed_one(
    data, tmp_path, capsys, monkeypatch
):
    train_dir, eval_dir = data
    out = tmp_path / "exp"
    argv = ["experiment", "table-5-1", *FAST, "--seeds", "1", "--autoencoder-steps", "2",
            "--data", str(train_dir), "--eval-data", str(eval_dir), "--out", str(out)]  # fmt: skip
    start = time.perf_counter()
    assert main(argv) == 0
    first_s = time.perf_counter() - start

    report = (out / "report.md").read_text()
    rows = [line.split(" | ")[0].lstrip("| ") for line in report.splitlines() if line.startswith("| ")]
    assert rows[1:11] == [*TABLE_5_1, *CLASSICAL, "Run"]
    assert "The best of them by FID is opencv-" in report
    assert "LPIPS ↓" in report and "SSIM convention: lama" in report and "Machine:" in report
    assert "(+" in report or "(-" in report  # % change against row 1
    summary = json.loads((out / "report.json").read_text())
    assert [row["preset"] for row in summary["rows"]] == list(TABLE_5_1)
    assert [row["preset"] for row in summary["classical"]] == list(CLASSICAL)
    for row in [*summary["rows"], *summary["classical"]]:
        for metric in ("ssim", "psnr", "fid"):
            assert isinstance(row["mean"][metric], float)
        assert row["mean"]["lpips"] is None  # not requested: the column says n/a
    assert all(row["mean"]["train_time_s"] > 0 for row in summary["rows"])
    assert summary["rows"][0]["change_pct"]["ssim"] is None  # row 1 is the baseline
    assert isinstance(summary["rows"][3]["change_pct"]["psnr"], float)
    for figure in ("loss_curves.png", "samples.png", "latent_damage.png"):
        assert (out / figure).read_bytes()[:4] == b"\x89PNG" and f"]({figure})" in report
    predictions = sorted(p.name for p in (out / "latent-control" / "seed0" / "predictions").iterdir())
    assert predictions == sorted(p.name for p in eval_dir.glob("*_mask*.png"))

    # the same command again: nothing trains, nothing is re-evaluated, the report is rewritten
    markers = done_markers(out)
    assert len(markers) == 10  # autoencoder, four rows, five classical fills
    timing = (out / "pixel-alpha" / "seed0" / "timing.json").read_text()
    capsys.readouterr()
    with monkeypatch.context() as patch:
        patch.setattr(runner, "train", lambda *a, **k: pytest.fail("a finished run was trained again"))
        start = time.perf_counter()
        assert main(argv) == 0
        rerun_s = time.perf_counter() - start
    assert capsys.readouterr().out.count("done, skipped") == 10
    assert done_markers(out) == markers
    assert (out / "pixel-alpha" / "seed0" / "timing.json").read_text() == timing
    assert rerun_s < first_s
    with capsys.disabled():
        print(f"\nfirst run {first_s:.1f} s, rerun of the finished experiment {rerun_s:.1f} s")

    # killed after training, before done.json: only prediction and evaluation run again
    (out / "latent-control" / "seed0" / "done.json").unlink()
    # killed in the middle of training: the run folder holds a step-1 checkpoint of a 2-step run
    run_dir = out / "pixel-alpha" / "seed0"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    for path in sorted(run_dir.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    runner.train(apply_overrides(RunConfig.read(config), ["trainer.max_steps=1"]), run_dir)
    assert load_torch_file(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 1

    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "pixel-alpha seed 0: training 2 steps, resuming at step 1" in printed
    assert "latent-control seed 0: training" not in printed
    after = done_markers(out)
    assert {k for k in markers if after[k] != markers[k]} == {"pixel-alpha/seed0", "latent-control/seed0"}
    assert load_torch_file(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 2
    assert json.loads((run_dir / "timing.json").read_text())["steps"] == 2  # 1 before the kill + 1 after
    assert json.loads((run_dir / "done.json").read_text())["resumed_from_step"] == 1
    assert "pixel-alpha/seed0 was resumed at step 1" in (out / "report.md").read_text()

    # another step budget in the same folder is refused, not mixed into the table
    assert main([*argv, "--steps", "3"]) == 2
    assert "was trained with other settings (trainer.max_steps: 2 -> 3)" in capsys.readouterr().err


@pytest.mark.slow
def test_two_seeds_on_builtin_photos_with_a_given_autoencoder(tmp_path, tiny):
    autoencoder = runner.train(tiny.config("autoencoder", "trainer.max_steps=2", size=32), tmp_path / "ae")
    out = tmp_path / "exp"
    argv = [
        "experiment",
        "appendix-a",
        *FAST,
        "--seeds",
        "2",
        "--autoencoder",
        str(autoencoder),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    summary = json.loads((out / "report.json").read_text())
    assert [row["preset"] for row in summary["rows"]] == [
        "latent-control", "latent-control-delta", "pixel-alpha-delta",
    ]  # fmt: skip
    for row in summary["rows"]:
        assert [run["dir"] for run in row["runs"]] == [f"{row['preset']}/seed0", f"{row['preset']}/seed1"]
        assert isinstance(row["std"]["ssim"], float) and isinstance(row["std"]["train_time_s"], float)
    assert not (out / "autoencoder").exists()  # reused, not trained
    report = (out / "report.md").read_text()
    assert " ± " in report and "chelsea, coffee are held out of training" in report
    assert sorted(p.name for p in (out / "data" / "eval").iterdir()) == [
        "chelsea.png", "chelsea_mask000.png", "coffee.png", "coffee_mask000.png",
    ]  # fmt: skip
    assert not any(
        name in p.name for p in (out / "data" / "train").iterdir() for name in ("chelsea", "coffee")
    )


def test_missing_perceptual_weights_fail_before_training(data, tmp_path, capsys):
    train_dir, eval_dir = data
    empty = tmp_path / "weights"
    empty.mkdir()
    argv = ["experiment", "table-5-2", *FAST, "--seeds", "1", "--data", str(train_dir),
            "--eval-data", str(eval_dir), "--weights-dir", str(empty), "--out", str(tmp_path / "exp")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    # lama-full runs LaMa's ResNet-PL: the message names its file, where it goes, and the ways out
    assert "ResNet-PL needs encoder_epoch_20.pth" in err and "loss.perceptual=0" in err
    assert (
        str(empty / "ade20k" / "ade20k-resnet50dilated-ppm") in err and "perceptual_backbone=resnet50" in err
    )
    assert not (tmp_path / "exp" / "autoencoder").exists()


LAMA_FIXTURE = (
    Path(__file__).parent / "fixtures" / "lama" / "tiny-lama"
)  # omegaconf 2.1 / Lightning 1.2 pickle


@pytest.mark.slow
def test_table_5_2_row_0_from_a_lama_folder_then_the_hint_without_it(data, tmp_path, capsys, monkeypatch):
    train_dir, eval_dir = data
    out = tmp_path / "exp"
    argv = ["experiment", "table-5-2", *FAST, "--seeds", "1", "--autoencoder-steps", "2",
            "--set", "loss.perceptual=0", "--data", str(train_dir), "--eval-data", str(eval_dir),
            "--out", str(out)]  # fmt: skip
    assert main([*argv, "--lama-folder", str(LAMA_FIXTURE)]) == 0
    report = (out / "report.md").read_text()
    table = [line.split(" | ")[0].lstrip("| ") for line in report.splitlines() if line.startswith("| ")]
    assert table[1:6] == [
        "(0) LaMa, authors' checkpoint",
        "lama-full",
        "lama-full-framework",
        "opencv-telea",
        "opencv-ns",
    ]
    summary = json.loads((out / "report.json").read_text())
    row = summary["lama_row"]
    assert row["folder"] == str(LAMA_FIXTURE.resolve())
    for metric in ("ssim", "psnr", "fid"):
        assert isinstance(row["mean"][metric], float) and isinstance(row["change_pct"][metric], float)
    predictions = sorted(p.name for p in (out / "lama-authors" / "predictions").iterdir())
    assert predictions == sorted(p.name for p in eval_dir.glob("*_mask*.png"))
    assert "Row (0) is the LaMa folder" in report and "`lama-authors`" in report

    # without the option: nothing runs again, and row (0) says how to add it
    with monkeypatch.context() as patch:
        patch.setattr(runner, "train", lambda *a, **k: pytest.fail("a finished run was trained again"))
        assert main(argv) == 0
    report = (out / "report.md").read_text()
    (line,) = [line for line in report.splitlines() if line.startswith("| (0) LaMa")]
    assert (
        "add `--lama-folder big-lama/`" in line
        and json.loads((out / "report.json").read_text())["lama_row"] is None
    )


def test_classical_rows_are_checked_before_training(data, tmp_path, capsys, monkeypatch):
    import cv2

    train_dir, eval_dir = data
    base = ["experiment", "table-5-1", *FAST, "--seeds", "1", "--data", str(train_dir),
            "--eval-data", str(eval_dir), "--out", str(tmp_path / "exp")]  # fmt: skip
    assert main([*base, "--classical", "opencv-telea,criminisi"]) == 2
    assert "--classical: unknown method 'criminisi'" in capsys.readouterr().err
    monkeypatch.delattr(cv2, "xphoto")
    assert main(base) == 2
    err = capsys.readouterr().err.strip()
    assert "opencv-shiftmap: " in err and "opencv-contrib-python-headless" in err and "--classical" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "exp").exists()


def test_lama_folder_is_checked_before_training(data, tmp_path, capsys):
    train_dir, eval_dir = data
    base = ["experiment", "table-5-2", *FAST, "--seeds", "1", "--set", "loss.perceptual=0",
            "--data", str(train_dir), "--eval-data", str(eval_dir)]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "a"), "--lama-folder", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "a" / "autoencoder").exists()
    table_5_1 = ["experiment", "table-5-1", "--steps", "2", "--out", str(tmp_path / "b")]
    assert main([*table_5_1, "--lama-folder", str(LAMA_FIXTURE)]) == 2
    assert "table-5-1 has no such row" in capsys.readouterr().err


@pytest.mark.parametrize("preset", sorted({p for rows in TABLES.values() for p in rows}))
def test_each_row_says_what_its_preset_is_and_the_yaml_agrees(preset):
    """The table's words are written once per preset; this catches a preset YAML that drifts from them."""
    said, cfg = PRESETS[preset], load_preset(preset)
    model, loss = cfg.model, cfg.loss
    assert said.mask.split(",")[0] == model.mask_mode
    assert ("delta refiner" in said.mask) == model.delta
    assert (said.encoder_decoder == "trainable") == (not model.freeze_autoencoder)
    assert ("stem trainable" in said.encoder_decoder) == model.train_first_conv
    assert ("pixel L1" in said.loss) == loss.use_pixel
    assert ("latent L1" in said.loss) == loss.use_latent
    assert ("perceptual" in said.loss) == (loss.perceptual > 0)
    assert ("adversarial" in said.loss) == (loss.adversarial > 0)
    # a single plain L1 is logged under its own name; a sum only as the total
    plain = {"pixel": "train/l1", "latent": "train/latent_l1"}.get(loss.mode)
    alone = loss.adversarial == 0 and loss.perceptual == 0
    assert said.curve[0] == (plain if alone else "train/loss")


def test_loader_workers_default_to_the_configs_auto(tmp_path):
    """--num-workers passes auto (the run config's default, resolved per device) unless given a number."""
    import argparse

    from latentpaint.evaluation import experiment_cli
    from latentpaint.evaluation.experiment import build_configs

    parser = argparse.ArgumentParser()
    experiment_cli.register(parser.add_subparsers())
    base = ["experiment", "table-5-1", "--steps", "2", "--out", str(tmp_path), "--weights-dir", str(tmp_path)]
    for given, expected in ([], "auto"), (["--num-workers", "3"], 3):
        ae, stage2 = build_configs(parser.parse_args([*base, *given]), tmp_path)
        assert {ae.data.num_workers} | {c.data.num_workers for c in stage2.values()} == {expected}
    with pytest.raises(argparse.ArgumentTypeError, match="auto or an integer from 0 to 256"):
        experiment_cli.loader_workers("-1")
