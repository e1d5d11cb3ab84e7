"""Hardening, round two (issue 11): each case failed before the fix and is one test here.

Classes: data loss (an output replacing an input or an existing file), decoders we did not choose and
image content read wrongly, memory and time bombs from tiny files, tracebacks instead of one line, and a
local server that talks to any web page. The helpers and the one-line/exit-code checks are the
bad-input corpus' (tests/test_bad_input.py).
"""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_bad_input import _noise, _small_network, assert_one_line, box_mask, run, write

from latentpaint.inference.checkpoints import CONFIG_NAME, WEIGHTS_NAME, save_release

H, W = 20, 24


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return save_release(_small_network(), tmp_path_factory.mktemp("model"))


def pair(folder: Path, stem: str = "image") -> tuple[Path, Path]:
    return write(folder / f"{stem}.png", _noise()), write(folder / f"{stem}_mask.png", box_mask())


# -- 1. data loss: an output never replaces an input, an existing file only with --overwrite ----------------
def test_export_refuses_to_replace_the_checkpoint_it_reads(tmp_path, capsys):
    release = save_release(_small_network(), tmp_path / "rel")
    before = (release / WEIGHTS_NAME).read_bytes()
    for out in (release, release / WEIGHTS_NAME):
        fmt = "safetensors" if out == release else "onnx"
        result = run(capsys, "export", "--checkpoint", release, "--format", fmt, "--out", out, "--overwrite")
        assert_one_line(result, 2, release / WEIGHTS_NAME)
        assert "input" in result.err[0]
    assert (release / WEIGHTS_NAME).read_bytes() == before


def test_export_needs_overwrite_for_an_existing_file(model, tmp_path, capsys):
    out = write(tmp_path / "model.pt", b"mine")
    result = run(capsys, "export", "--checkpoint", model, "--format", "torchscript", "--out", out)
    assert_one_line(result, 2, out)
    assert "--overwrite" in result.err[0] and out.read_bytes() == b"mine"
    folder = tmp_path / "release"
    write(folder / CONFIG_NAME, b"{}")
    result = run(capsys, "export", "--checkpoint", model, "--format", "safetensors", "--out", folder)
    assert_one_line(result, 2, folder / CONFIG_NAME)
    assert run(capsys, "export", "--checkpoint", model, "--format", "safetensors", "--out", folder,
               "--overwrite").code == 0  # fmt: skip
    assert (folder / WEIGHTS_NAME).is_file()


@pytest.mark.parametrize("target", ["image", "mask"])
def test_visualize_refuses_to_replace_its_input(target, model, tmp_path, capsys):
    image, mask = pair(tmp_path)
    out = {"image": image, "mask": mask}[target]
    before = out.read_bytes()
    result = run(capsys, "visualize", "--checkpoint", model, "--image", image, "--mask", mask, "--out", out,
                 "--overwrite")  # fmt: skip
    assert_one_line(result, 2, out)
    assert out.read_bytes() == before


def test_visualize_needs_overwrite_for_an_existing_file(model, tmp_path, capsys):
    image, mask = pair(tmp_path)
    out = write(tmp_path / "figure.png", b"mine")
    result = run(capsys, "visualize", "--checkpoint", model, "--image", image, "--mask", mask, "--out", out)
    assert_one_line(result, 2, out)
    assert out.read_bytes() == b"mine"


def _eval_folders(tmp_path: Path) -> tuple[Path, Path]:
    data, predictions = tmp_path / "data", tmp_path / "predictions"
    write(data / "a.png", _noise())
    write(data / "a_mask000.png", box_mask())
    write(predictions / "a_mask000.png", _noise(seed=2))
    return data, predictions


@pytest.mark.parametrize("target", ["data/a.png", "data/a_mask000.png", "predictions/a_mask000.png"])
def test_evaluate_refuses_to_replace_an_input(target, tmp_path, capsys):
    data, predictions = _eval_folders(tmp_path)
    out = tmp_path / target
    before = out.read_bytes()
    result = run(capsys, "evaluate", "--data", data, "--predictions", predictions, "--metrics", "ssim",
                 "--out", out, "--overwrite")  # fmt: skip
    assert_one_line(result, 2, out)
    assert out.read_bytes() == before


def test_evaluate_needs_overwrite_for_an_existing_file(tmp_path, capsys):
    data, predictions = _eval_folders(tmp_path)
    out = write(tmp_path / "results.json", b"mine")
    args = ["evaluate", "--data", data, "--predictions", predictions, "--metrics", "ssim", "--out", out]
    assert_one_line(run(capsys, *args), 2, out)
    assert out.read_bytes() == b"mine"
    assert run(capsys, *args, "--overwrite").code == 0 and out.read_bytes() != b"mine"


def test_predict_folder_refuses_to_overwrite_existing_files(model, tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    for stem in ("a", "b", "c"):
        write(data / f"{stem}.png", _noise())
        write(data / f"{stem}_mask000.png", box_mask())
    for stem in ("a", "b"):
        write(out / f"{stem}_mask000.png", b"someone else's file")
    args = ["predict", "--model", model, "--input", data, "--output", out]
    result = run(capsys, *args)
    assert_one_line(result, 2, out)
    assert "2 files already exist" in result.err[0] and "--overwrite" in result.err[0]
    assert sorted(p.name for p in out.iterdir()) == ["a_mask000.png", "b_mask000.png"]
    assert (out / "a_mask000.png").read_bytes() == b"someone else's file"
    assert run(capsys, *args, "--overwrite").code == 0
    assert len(list(out.iterdir())) == 3


def test_predict_refuses_to_write_over_a_mask_sharing_the_stem(model, tmp_path, capsys):
    # IOPaint naming with the masks folder as output: photo.jpg's result photo.png is its mask
    images, masks = tmp_path / "images", tmp_path / "masks"
    Image.fromarray(_noise()).save(images.mkdir() or images / "photo.jpg")
    mask = write(masks / "photo.png", box_mask())
    before = mask.read_bytes()
    result = run(capsys, "predict", "--model", model, "--input", images, "--mask", masks, "--output", masks,
                 "--overwrite")  # fmt: skip
    assert_one_line(result, 2, mask)
    assert mask.read_bytes() == before


def test_masks_needs_overwrite_for_existing_files(tmp_path, capsys):
    images, out = tmp_path / "images", tmp_path / "eval"
    write(images / "a.png", _noise(40, 40))
    args = ["masks", "--preset", "thin_256", "--size", "32", "--images", images, "--out", out]
    assert run(capsys, *args).code == 0
    result = run(capsys, *args)
    assert_one_line(result, 2, out)
    assert "2 files already exist" in result.err[0]
    assert run(capsys, *args, "--overwrite").code == 0
