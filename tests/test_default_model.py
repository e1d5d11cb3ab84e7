"""The model shipped inside the package: it loads by name, inpaints, and is what predict uses by default."""

import json

import numpy as np
import pytest
from PIL import Image

from latentpaint.cli import main
from latentpaint.errors import LatentpaintError
from latentpaint.evaluation.classical import worse_metrics
from latentpaint.inference.inpainter import Inpainter
from latentpaint.inference.pretrained import resolve_model, shipped_model_dir


def _photo(size: int = 96) -> np.ndarray:
    from skimage.data import astronaut

    return np.ascontiguousarray(astronaut()[100 : 100 + size, 150 : 150 + size])


def _hole(size: int = 96) -> np.ndarray:
    mask = np.zeros((size, size), np.float32)
    mask[30:60, 20:70] = 1
    return mask


def test_shipped_model_is_a_small_release_with_a_model_card():
    folder = shipped_model_dir("default")
    assert (folder / "model.safetensors").stat().st_size < 8 * 2**20
    config = json.loads((folder / "config.json").read_text())
    assert (
        config["mask_mode"] == "control" and config["prefill"] == "telea" and config["output"] == "residual"
    )
    card = (folder / "MODEL_CARD.md").read_text()
    assert "OpenCV Telea" in card and "Held-out scores" in card
    # the held-out verdict summaries print is derived from the scores recorded with the model
    heldout = config["heldout"]
    assert heldout["crops"] > 0 and set(heldout["model"]) == {"ssim", "psnr", "fid"}
    worse = worse_metrics(heldout["model"], heldout["opencv_telea"])
    assert ("worse than OpenCV Telea" in card) == bool(worse)


def test_worse_metrics_knows_which_way_each_score_points():
    ours, telea = {"ssim": 0.9, "psnr": 27.0, "fid": 90.0}, {"ssim": 0.8, "psnr": 28.0, "fid": 80.0}
    assert worse_metrics(ours, telea) == ["PSNR", "FID"]
    assert worse_metrics(telea, telea) == ["SSIM", "PSNR", "FID"]  # a tie does not beat the floor
    assert worse_metrics({"psnr": 30.0}, telea) == []


def test_shipped_model_inpaints_and_keeps_known_pixels():
    image, mask = _photo(), _hole()
    result = Inpainter.from_pretrained("default")(image, mask)
    assert result.shape == image.shape and result.dtype == np.uint8
    known = mask == 0
    assert np.array_equal(result[known], image[known])
    hole = result[mask > 0].astype(np.float32)
    # a fill, not a constant: the hole's colours vary and stay near the surrounding photo's range
    assert hole.std() > 2 and abs(hole.mean() - image[known].mean()) < 60


def test_predict_without_model_uses_the_shipped_model(tmp_path):
    image, mask = _photo(64), _hole(64)[:64, :64]
    Image.fromarray(image).save(tmp_path / "a.png")
    Image.fromarray((mask * 255).astype(np.uint8)).save(tmp_path / "a_mask.png")
    assert main(["predict", "--input", str(tmp_path / "a.png"), "--output", str(tmp_path / "out")]) == 0
    (written,) = (tmp_path / "out").iterdir()  # named after the mask, as LaMa names predictions
    out = np.asarray(Image.open(written).convert("RGB"))
    assert np.array_equal(out[mask == 0], image[mask == 0])


def test_a_local_path_named_default_wins_over_the_shipped_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "default").mkdir()
    assert resolve_model("default").resolve() == (tmp_path / "default").resolve()


def test_unknown_shipped_name_is_one_line():
    with pytest.raises(LatentpaintError, match="no shipped model"):
        shipped_model_dir("nonexistent")
