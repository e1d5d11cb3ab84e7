"""`latentpaint predict`: LaMa and IOPaint pairing, classical methods, per-file failures, mask sizes."""

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from latentpaint.cli import main
from latentpaint.inference.checkpoints import save_release
from latentpaint.inference.classical import CLASSICAL_METHODS, classical_fill
from latentpaint.models.network import InpaintingNetwork


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    return save_release(InpaintingNetwork("thesis", "alpha", n_blocks=2), tmp_path_factory.mktemp("model"))


def predict(*args) -> int:
    return main(["predict", *map(str, args)])


def _image(path, h=48, w=64, seed=0):
    array = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return array


def _mask(path, h=48, w=64, box=(10, 30, 20, 50), level=255):
    array = np.zeros((h, w), np.uint8)
    array[box[0] : box[1], box[2] : box[3]] = level
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return array > 0


def _check(out_path, image, mask):
    out = np.asarray(Image.open(out_path).convert("RGB"))
    assert out.shape == image.shape
    assert np.array_equal(out[~mask], image[~mask])
    return out


def test_lama_naming(tmp_path, model, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    a = _image(data / "a.png")
    masks = [_mask(data / "a_mask000.png"), _mask(data / "a_mask001.png", box=(0, 5, 0, 64), level=3)]
    b = _image(data / "sub" / "b.jpg", seed=1)
    b_mask = _mask(data / "sub" / "b_mask000.png")
    assert predict("--model", model, "--input", data, "--output", out) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "a_mask000.png", "a_mask001.png", "sub/b_mask000.png"
    ]  # fmt: skip
    _check(out / "a_mask000.png", a, masks[0])
    _check(out / "a_mask001.png", a, masks[1])
    _check(out / "sub" / "b_mask000.png", np.asarray(Image.open(data / "sub" / "b.jpg")), b_mask)
    assert "wrote 3 of 3" in capsys.readouterr().out
    del b


def test_iopaint_mask_folder_and_single_mask(tmp_path, model):
    images, masks = tmp_path / "images", tmp_path / "masks"
    x = _image(images / "x.png")
    y = _image(images / "sub" / "y.png", seed=2)
    mx = _mask(masks / "x.png")
    my = _mask(masks / "sub" / "y.bmp", box=(0, 48, 0, 8))
    assert predict("--model", model, "--input", images, "--mask", masks, "--output", tmp_path / "o1") == 0
    _check(tmp_path / "o1" / "x.png", x, mx)
    _check(tmp_path / "o1" / "sub" / "y.png", y, my)

    one = _mask(tmp_path / "one.png", box=(5, 15, 5, 15))
    assert (
        predict(
            "--model", model, "--input", images, "--mask", tmp_path / "one.png", "--output", tmp_path / "o2"
        )
        == 0
    )
    _check(tmp_path / "o2" / "x.png", x, one)
    _check(tmp_path / "o2" / "sub" / "y.png", y, one)

    single = ("--input", images / "x.png", "--mask", masks / "x.png")
    assert predict("--model", model, *single, "--output", tmp_path / "o3") == 0
    _check(tmp_path / "o3" / "x.png", x, mx)


@pytest.mark.parametrize("method", list(CLASSICAL_METHODS))
def test_classical_methods_need_no_model(tmp_path, method):
    image = _image(tmp_path / "in" / "p.png")
    mask = _mask(tmp_path / "in" / "p_mask000.png")
    assert (
        predict("--method", method, "--input", tmp_path / "in" / "p.png", "--output", tmp_path / "out") == 0
    )
    out = _check(tmp_path / "out" / "p_mask000.png", image, mask)
    assert not np.array_equal(out[mask], image[mask])
    assert np.array_equal(out, classical_fill(image, mask.astype(np.float32), method))  # the API's result


@pytest.mark.parametrize("method", ["opencv-shiftmap", "opencv-fsr", "patchmatch"])
def test_texture_fills_on_a_folder_both_namings(tmp_path, method, capsys):
    data, images, masks = tmp_path / "data", tmp_path / "images", tmp_path / "masks"
    a = _image(data / "a.png")
    a_masks = [_mask(data / "a_mask000.png"), _mask(data / "a_mask001.png", box=(0, 6, 0, 64))]
    _image(data / "sub" / "b.jpg", seed=1)
    b_mask = _mask(data / "sub" / "b_mask000.png")
    assert predict("--method", method, "--input", data, "--output", tmp_path / "o1") == 0
    _check(tmp_path / "o1" / "a_mask000.png", a, a_masks[0])
    _check(tmp_path / "o1" / "a_mask001.png", a, a_masks[1])
    _check(tmp_path / "o1" / "sub" / "b_mask000.png", np.asarray(Image.open(data / "sub" / "b.jpg")), b_mask)
    assert "wrote 3 of 3" in capsys.readouterr().out
    x = _image(images / "x.png", seed=2)
    mx = _mask(masks / "x.png", box=(5, 40, 30, 60))
    _image(images / "full.png", seed=3)
    _mask(masks / "full.png", box=(0, 48, 0, 64))  # nothing known to copy texture from
    (images / "y.png").write_bytes(b"not a png")
    _mask(masks / "y.png")
    assert predict("--method", method, "--input", images, "--mask", masks, "--output", tmp_path / "o2") == 1
    _check(tmp_path / "o2" / "x.png", x, mx)
    failures = [line for line in capsys.readouterr().err.splitlines() if "failed:" in line]
    assert len(failures) == 2 and not (tmp_path / "o2" / "y.png").exists()
    assert any("covers the whole image" in line and "full.png" in line for line in failures)
    # the outputs exist now: replaced only with --overwrite
    assert predict("--method", method, "--input", data, "--output", tmp_path / "o1") == 2
    assert predict("--method", method, "--input", data, "--output", tmp_path / "o1", "--overwrite") == 0


def test_missing_backend_is_one_line_naming_the_package(tmp_path, monkeypatch, capsys):
    import cv2

    _image(tmp_path / "in" / "p.png")
    _mask(tmp_path / "in" / "p_mask000.png")
    monkeypatch.delattr(cv2, "xphoto")
    monkeypatch.setitem(sys.modules, "patchmatch_cython", None)
    for method, package in [
        ("opencv-fsr", "opencv-contrib-python-headless=="),
        ("patchmatch", "patchmatch-cython"),
    ]:
        assert predict("--method", method, "--input", tmp_path / "in", "--output", tmp_path / "out") == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("latentpaint predict: error:") and "\n" not in err and package in err, err
        assert not (tmp_path / "out").exists()  # failed before anything was written


def test_failed_file_is_reported_and_others_written(tmp_path, model, capsys):
    data = tmp_path / "data"
    good = _image(data / "good.png")
    mask = _mask(data / "good_mask000.png")
    (data / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    _mask(data / "broken_mask000.png")
    _image(data / "orphan.png", seed=3)  # an image without a mask
    code = predict("--model", model, "--input", data, "--output", tmp_path / "out")
    err = capsys.readouterr().err
    assert code == 1
    _check(tmp_path / "out" / "good_mask000.png", good, mask)
    failures = [line for line in err.splitlines() if "failed:" in line]
    assert len(failures) == 2
    assert any("broken.png" in f for f in failures) and any("orphan.png" in f for f in failures)


def test_mask_size_mismatch_is_an_error_unless_resized(tmp_path, model, capsys):
    image = _image(tmp_path / "i.png")
    _mask(tmp_path / "m.png", h=24, w=32, box=(5, 12, 10, 20))
    args = ("--model", model, "--input", tmp_path / "i.png", "--mask", tmp_path / "m.png")
    assert predict(*args, "--output", tmp_path / "o1") == 1
    assert "--resize-mask" in capsys.readouterr().err
    assert not (tmp_path / "o1" / "i.png").exists()
    assert predict(*args, "--output", tmp_path / "o2", "--resize-mask") == 0
    resized = np.zeros((48, 64), bool)
    resized[10:24, 20:40] = True  # nearest-neighbour doubling of the 24x32 mask
    _check(tmp_path / "o2" / "i.png", image, resized)


def test_user_errors_exit_2_with_one_line(tmp_path, model, capsys):
    (tmp_path / "empty").mkdir()
    data = tmp_path / "data"
    _image(data / "a.png")
    _mask(data / "a_mask000.png")
    cases = [
        ("--model", model, "--input", tmp_path / "empty"),  # no images
        ("--model", model, "--input", data / "a_mask000.png"),  # no pairs
        ("--model", tmp_path / "nothing", "--input", data),
        ("--method", "opencv-ns", "--model", model, "--input", data),
    ]
    if not torch.cuda.is_available():
        cases.append(("--model", model, "--input", data, "--device", "cuda:7"))
    for case in cases:
        capsys.readouterr()
        assert predict(*case, "--output", tmp_path / "out") == 2, case
        err = capsys.readouterr().err.strip()
        assert err.startswith("latentpaint predict: error:") and "\n" not in err, err
    # writing the results into the input folder would overwrite the LaMa masks
    assert predict("--model", model, "--input", data, "--output", data) == 2
    assert "overwrite" in capsys.readouterr().err


def test_hd_and_refine_flags_run(tmp_path, model):
    image = _image(tmp_path / "i.png", h=40, w=72)
    mask = _mask(tmp_path / "m.png", h=40, w=72)
    base = ("--model", model, "--input", tmp_path / "i.png", "--mask", tmp_path / "m.png")
    crop = ("--hd-strategy", "crop", "--hd-crop-trigger", 32, "--hd-crop-margin", 8)
    assert predict(*base, "--output", tmp_path / "o1", *crop) == 0
    _check(tmp_path / "o1" / "i.png", image, mask)
    assert predict(*base, "--output", tmp_path / "o2", "--refine", "--optimize") == 0
    _check(tmp_path / "o2" / "i.png", image, mask)
