import json

import numpy as np
import pytest
import torch
from PIL import Image

from latentpaint.cli import main
from latentpaint.metrics.suite import VGG16_FILE, psnr, ssim

SIZE = 40


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def dataset(tmp_path):
    """A LaMa folder (4 images, 5 masks; two image sizes) and matching predictions: noise inside each mask."""
    rng = np.random.default_rng(0)
    data, predictions = tmp_path / "data", tmp_path / "predictions"
    # (image name, size, mask rectangles as (row0, row1, col0, col1)); areas 5%, 15%, 25%, 25%, 45%
    layout = [
        ("a", (SIZE, SIZE), [(0, 8, 0, 10)]),
        ("b", (SIZE, SIZE), [(0, 24, 0, 10), (0, 20, 0, 20)]),
        ("c", (SIZE, SIZE), [(0, 20, 0, 20)]),
        ("d", (32, 48), [(0, 16, 0, 43)]),
    ]
    for name, (h, w), rects in layout:
        yy, xx = np.mgrid[0:h, 0:w]
        image = np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=-1).clip(0, 255).astype(np.uint8)
        _save(data / f"{name}.png", image)
        for k, (r0, r1, c0, c1) in enumerate(rects):
            mask = np.zeros((h, w), dtype=np.uint8)
            mask[r0:r1, c0:c1] = 255
            _save(data / f"{name}_mask{k:03d}.png", mask)
            noisy = image.astype(int) + rng.integers(-40, 40, image.shape) * (mask[..., None] > 0)
            _save(predictions / f"{name}_mask{k:03d}.png", noisy.clip(0, 255).astype(np.uint8))
    return data, predictions


def _evaluate(data, predictions, *extra):
    return main(["evaluate", "--data", str(data), "--predictions", str(predictions), *extra])


def _load(path):
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)[None].float() / 255


def test_evaluate_end_to_end_writes_json_and_table(dataset, tmp_path, capsys):
    data, predictions = dataset
    out = tmp_path / "results" / "eval.json"
    args = ["--metrics", "ssim,psnr,fid", "--fid-feature", "stand-in", "--out", str(out), "--batch-size", "2"]
    assert _evaluate(data, predictions, *args) == 0
    stdout = capsys.readouterr().out
    assert "SSIM convention: lama" in stdout and "total" in stdout and "25-30%" not in stdout

    report = json.loads(out.read_text())
    assert report["ssim_convention"] == "lama"
    assert report["counts"] == {
        "pairs": 5,
        "images": 4,
        "per_bin": {"0-10%": 1, "10-20%": 1, "20-30%": 2, "40-50%": 1},
    }
    assert report["bins"]["0-10%"]["fid"] is None and report["bins"]["20-30%"]["fid"] >= 0
    assert set(report["total"]) >= {"ssim", "ssim_std", "psnr", "psnr_std", "fid", "ssim_fid100_f1"}
    assert "stand-in" in report["metrics"]["fid"] and report["errors"] == {}
    assert report["versions"]["torchmetrics"]

    # the totals are the means of the per-pair values computed directly
    names = ["a_mask000", "b_mask000", "b_mask001", "c_mask000", "d_mask000"]
    pairs = [(_load(predictions / f"{n}.png"), _load(data / f"{n.split('_')[0]}.png")) for n in names]
    expected_ssim = np.mean([ssim(p, t).item() for p, t in pairs])
    expected_psnr = np.mean([psnr(p, t).item() for p, t in pairs])
    assert report["total"]["ssim"] == pytest.approx(expected_ssim, abs=1e-6)
    assert report["total"]["psnr"] == pytest.approx(expected_psnr, abs=1e-4)
    assert not list(out.parent.glob(".*.tmp"))  # the atomic write left no temp file


def test_evaluate_skimage_convention_is_reported(dataset, capsys):
    data, predictions = dataset
    assert _evaluate(data, predictions, "--metrics", "ssim", "--ssim-convention", "skimage") == 0
    assert "SSIM convention: skimage" in capsys.readouterr().out


def test_single_mask_images_may_use_the_image_name(dataset, capsys):
    data, predictions = dataset
    (predictions / "a_mask000.png").rename(predictions / "a.png")
    assert _evaluate(data, predictions, "--metrics", "psnr") == 0


def test_missing_lpips_weights_still_reports_the_rest_then_exits_2(dataset, tmp_path, monkeypatch, capsys):
    data, predictions = dataset
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # an empty hub cache
    weights = tmp_path / "weights"
    weights.mkdir()
    out = tmp_path / "eval.json"
    code = _evaluate(
        data, predictions, "--metrics", "ssim,lpips", "--weights-dir", str(weights), "--out", str(out)
    )
    assert code == 2
    captured = capsys.readouterr()
    err_lines = captured.err.strip().splitlines()
    assert len(err_lines) == 1 and VGG16_FILE in err_lines[0] and str(weights) in err_lines[0]
    assert "SSIM convention: lama" in captured.out
    report = json.loads(out.read_text())
    assert "ssim" in report["total"] and "lpips" not in report["total"] and "lpips" in report["errors"]

    # with nothing else to compute it fails before reading any image
    assert _evaluate(data, predictions, "--metrics", "lpips", "--weights-dir", str(weights)) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1 and VGG16_FILE in captured.err


def test_missing_and_extra_predictions_are_one_error(dataset, capsys):
    data, predictions = dataset
    (predictions / "b_mask001.png").unlink()
    (predictions / "c_mask000.png").rename(predictions / "zzz_mask000.png")
    assert _evaluate(data, predictions, "--metrics", "psnr") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "2 missing ('b_mask001.png', 'c_mask000.png')" in err and "1 extra ('zzz_mask000.png')" in err


def test_prediction_of_the_wrong_size_names_the_file(dataset, capsys):
    data, predictions = dataset
    _save(predictions / "c_mask000.png", np.zeros((SIZE, SIZE + 2, 3), dtype=np.uint8))
    assert _evaluate(data, predictions, "--metrics", "psnr") == 2
    err = capsys.readouterr().err
    assert "c_mask000.png" in err and "42x40" in err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--metrics", "ssim,niqe"], "unknown metrics"),
        (["--ssim-convention", "matlab"], "SSIM convention"),
        (["--metrics", "fid", "--fid-feature", "clip"], "FID feature"),
        (["--batch-size", "0"], "--batch-size"),
    ],
)
def test_bad_options_are_one_line_errors(dataset, capsys, extra, message):
    data, predictions = dataset
    assert _evaluate(data, predictions, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
