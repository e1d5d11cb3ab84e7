"""Validation during training (`--val-data`): LaMa's ssim_fid100_f1, the top-k checkpoints by it, best-or-last."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentpaint.cli import main
from latentpaint.data.images import save_image
from latentpaint.errors import LatentpaintError
from latentpaint.inference.checkpoints import load_torch_file
from latentpaint.metrics import bins
from latentpaint.training import validation
from latentpaint.training.presets import apply_overrides, load_preset
from latentpaint.training.runner import train
from latentpaint.training.validation import VAL_METRIC, best_or_last
from latentpaint.viz.figures import read_metric

TINY = [
    "model.overrides={ngf: 8}", "data.size=32", "data.batch_size=1", "data.num_workers=0",
    "trainer.progress_bar=false", "trainer.accelerator=cpu", "trainer.log_every_n_steps=1",
    "trainer.checkpoint_every_n_steps=100", "trainer.val_fid_feature=stand-in",
]  # fmt: skip


@pytest.fixture(scope="module")
def val_dir(tmp_path_factory):
    """A LaMa-layout folder as `latentpaint masks` writes it: NAME.png + NAME_mask000.png."""
    folder = tmp_path_factory.mktemp("val")
    rng = np.random.default_rng(0)
    for i in range(3):
        save_image(folder / f"img{i}.png", rng.integers(0, 256, (32, 40, 3), dtype=np.uint8))
        mask = np.zeros((32, 40), np.uint8)
        mask[8 : 16 + 4 * i, 10:30] = 255
        save_image(folder / f"img{i}_mask000.png", mask)
    return folder


def _config(val_dir, *sets: str):
    return load_preset("pixel-alpha", [*TINY, f"data.val={val_dir}", *sets])


def test_validation_logs_lamas_score_and_keeps_the_best(val_dir, tmp_path):
    out = tmp_path / "run"
    train(
        _config(val_dir, "trainer.max_steps=4", "trainer.val_check_interval=2", "trainer.save_top_k=1"), out
    )
    csv = out / "logs" / "metrics.csv"
    _, scores = read_metric(csv, VAL_METRIC)
    _, ssims = read_metric(csv, "val_ssim_total_mean")
    _, fids = read_metric(csv, "val_fid_total_mean")
    assert len(scores) == 2  # steps 2 and 4
    for score, s, f in zip(scores, ssims, fids, strict=True):
        assert 0 < s < 1 and f >= 0
        assert score == pytest.approx(bins.ssim_fid100_f1(s, f), rel=1e-5)  # LaMa's harmonic mean
    best = sorted((out / "checkpoints").glob("best-*.ckpt"))
    assert len(best) == 1 and (out / "checkpoints" / "last.ckpt").is_file()
    assert best_or_last(out) == (best[0], "best")


class ScriptedSuite:
    """Stands in for MetricSuite: validation n scores SSIM `ssims[n]` with FID 0, so its f1 is known exactly."""

    metrics, errors = ("ssim", "fid"), {}

    def __init__(self, ssims, device: torch.device):
        self.ssims, self.device = ssims, device

    def reset(self):
        pass

    def update(self, pred, target, mask):
        assert pred.shape == target.shape and 0 <= pred.min() and pred.max() <= 1

    def compute(self):
        s = next(self.ssims)
        return {"total": {"ssim": s, "fid": 0.0, "ssim_fid100_f1": bins.ssim_fid100_f1(s, 0.0)}}


def test_top_k_keeps_the_highest_scores_and_experiment_picks_the_best(val_dir, tmp_path, monkeypatch):
    ssims = iter([0.2, 0.9, 0.5])
    monkeypatch.setattr(
        validation, "metric_suite_factory", lambda feature: lambda device: ScriptedSuite(ssims, device)
    )
    out = tmp_path / "run"
    train(
        _config(val_dir, "trainer.max_steps=3", "trainer.val_check_interval=1", "trainer.save_top_k=2"), out
    )
    assert next(ssims, None) is None  # validated at steps 1, 2 and 3
    kept = sorted(p.name for p in (out / "checkpoints").glob("best-*.ckpt"))
    assert len(kept) == 2  # validations 2 (0.9) and 3 (0.5); 1 (0.2) was dropped
    best, which = best_or_last(out)
    assert which == "best"
    # the best file is the one written at the second validation: its own stored score says so
    callbacks = load_torch_file(best)["callbacks"]
    scores = [float(v["current_score"]) for k, v in callbacks.items() if VAL_METRIC in k]
    assert scores == [pytest.approx(bins.ssim_fid100_f1(0.9, 0.0))]


def test_without_validation_the_last_checkpoint_is_used(tmp_path):
    out = tmp_path / "run"
    train(load_preset("pixel-alpha", [*TINY, "trainer.max_steps=1"]), out)
    assert best_or_last(out) == (out / "checkpoints" / "last.ckpt", "last")
    assert not list((out / "checkpoints").glob("best-*"))


def test_bad_validation_settings_are_one_line(val_dir, tmp_path, capsys):
    lonely = tmp_path / "one"
    lonely.mkdir()
    for name in ("img0.png", "img0_mask000.png"):
        (lonely / name).write_bytes((val_dir / name).read_bytes())
    argv = ["train", "inpainting", "--config", "pixel-alpha", "--out", str(tmp_path / "r"), "--val-data"]
    assert main([*argv, str(lonely), "--set", *TINY, "trainer.max_steps=1"]) == 2
    assert "needs at least 2" in capsys.readouterr().err
    assert main([*argv, str(tmp_path / "missing"), "--set", *TINY, "trainer.max_steps=1"]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(LatentpaintError, match="needs at least 2"):  # before any training step
        validation.validation(_config(lonely), tmp_path)
    with pytest.raises(LatentpaintError, match="no validation"):  # the config itself refuses it
        apply_overrides(load_preset("autoencoder"), [f"data.val={val_dir}"])


def test_experiment_report_says_which_runs_used_their_best_checkpoint():
    from argparse import Namespace

    from latentpaint.evaluation.experiment import notes

    args = Namespace(table="table-5-1", lama_folder=None, data="train", eval_data="eval")
    runs = [{"dir": "pixel-alpha/seed0", "checkpoint_kind": "best"}, {"dir": "pixel-alpha/seed1"}]
    found = [n for n in notes(args, {}, [{"runs": runs}], [], ()) if "best checkpoint" in n]
    assert len(found) == 1 and VAL_METRIC in found[0]
    assert "pixel-alpha/seed0" in found[0] and "seed1" not in found[0]
    runs[0]["checkpoint_kind"] = "last"
    assert not [n for n in notes(args, {}, [{"runs": runs}], [], ()) if "best checkpoint" in n]


def test_ranks_score_their_share_of_the_pairs_and_gather_one_score(val_dir, monkeypatch):
    """DDP: each rank validates every world_size-th pair; gathering the shards gives every rank the score of
    one process scoring them all."""
    from latentpaint.data.datamodule import validation_loader
    from latentpaint.metrics.suite import MetricSuite

    def suite():
        return MetricSuite(("ssim", "fid"), "lama", None, "cpu", "stand-in")

    def score(s, loader):
        for batch in loader:
            s.update(batch["image"] * 0.9, batch["image"], batch["mask"])

    shards = [validation_loader(val_dir, rank, 2) for rank in range(2)]
    assert [[b["name"][0] for b in loader] for loader in shards] == [["img0", "img2"], ["img1"]]
    ranks = [suite() for _ in shards]
    for s, loader in zip(ranks, shards, strict=True):
        score(s, loader)
    states = [s.state() for s in ranks]
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    monkeypatch.setattr(
        torch.distributed, "all_gather_object", lambda out, own: out.__setitem__(slice(None), states)
    )
    validation.gather_shards(ranks[1], 2)
    monkeypatch.undo()  # the DataLoader below asks torch.distributed too
    alone = suite()
    score(alone, validation_loader(val_dir))
    gathered, expected = ranks[1].compute()["total"], alone.compute()["total"]
    assert gathered["count"] == expected["count"] == 3
    for key in ("ssim", "fid", "ssim_fid100_f1"):
        assert gathered[key] == pytest.approx(expected[key], rel=1e-6, abs=1e-9)
