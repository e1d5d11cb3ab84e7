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

from latentpaint.inference.checkpoints import CONFIG_NAME, WEIGHTS_NAME, save_release
from test_bad_input import _noise, _small_network, assert_one_line, box_mask, run, write

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


# -- 2. images are decoded only by the decoders we choose, and read as they look ---------------------------
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 24 20\n0 0 moveto 24 20 lineto stroke\nshowpage\n"


@pytest.fixture
def foreign_decoders(monkeypatch) -> list[str]:
    """Records every call into Pillow's PostScript plugin (which hands the file to Ghostscript)."""
    from PIL import EpsImagePlugin

    calls: list[str] = []

    def refuse(self, *args, **kwargs):
        calls.append("EpsImageFile._open")
        raise OSError("the EPS decoder was used")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", refuse)
    return calls


@pytest.mark.parametrize("command", ["predict", "masks", "evaluate", "train", "load_rgb", "api"])
def test_postscript_named_png_never_reaches_ghostscript(command, foreign_decoders, model, tmp_path, capsys):
    data = tmp_path / "data"
    eps = write(data / "a.png", EPS)
    if command == "predict":
        result = run(capsys, "predict", "--model", model, "--input", eps, "--mask",
                     write(tmp_path / "m.png", box_mask()), "--output", tmp_path / "out")  # fmt: skip
        assert_one_line(result, 1, eps)
    elif command == "masks":
        result = run(capsys, "masks", "--preset", "thin_256", "--size", "32", "--images", data, "--out",
                     tmp_path / "out")  # fmt: skip
        assert_one_line(result, 2, eps)
    elif command == "evaluate":
        write(data / "a_mask000.png", box_mask())
        write(tmp_path / "pred" / "a_mask000.png", _noise())
        result = run(
            capsys, "evaluate", "--data", data, "--predictions", tmp_path / "pred", "--metrics", "ssim"
        )
        assert_one_line(result, 2, eps)
    elif command == "train":
        result = run(capsys, "train", "autoencoder", "--data", data, "--out", tmp_path / "run", "--set",
                     "data.size=32", "data.num_workers=0", "trainer.accelerator=cpu")  # fmt: skip
        assert_one_line(result, 2, data)
    elif command == "load_rgb":
        from latentpaint.data.images import load_rgb
        from latentpaint.errors import LatentpaintError

        with pytest.raises(LatentpaintError, match="supported format"):
            load_rgb(eps)
    else:
        response = api_post(api_client(), EPS, png_bytes(box_mask()))
        assert response.status_code == 415
    assert foreign_decoders == []


def png_bytes(array: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **options)
    return buffer.getvalue()


_CLIENT = {}


def api_client(**options):
    """One TestClient per option set for this module (the tiny thesis model, mask control)."""
    from fastapi.testclient import TestClient

    from latentpaint.inference.inpainter import Inpainter
    from latentpaint.models.network import InpaintingNetwork
    from latentpaint.server.app import create_app

    key = tuple(sorted(options.items()))
    if key not in _CLIENT:
        import torch

        torch.manual_seed(0)
        app = create_app(Inpainter(InpaintingNetwork("thesis", "control")), **options)
        _CLIENT[key] = TestClient(app, base_url="http://127.0.0.1:8080")
    return _CLIENT[key]


def api_post(client, image: bytes, mask: bytes, path: str = "/api/inpaint", headers=None):
    files = {"image": ("image", image, "application/octet-stream"), "mask": ("mask", mask, "image/png")}
    return client.post(path, files=files, headers=headers or {})


@pytest.mark.parametrize("mode", ["I;16-png", "I-tiff", "I;16-tiff"])
def test_wide_integer_modes_with_8_bit_content_are_not_black(mode, tmp_path):
    from latentpaint.data.images import load_rgb

    grey = _noise()[..., 0]
    kind, fmt = mode.rsplit("-", 1)
    array = grey.astype(np.int32 if kind == "I" else np.uint16)
    image = Image.fromarray(array) if kind == "I;16" else Image.fromarray(array).convert("I")
    path = tmp_path / f"grey.{fmt}"
    image.save(path)
    with Image.open(path) as check:
        assert check.mode.startswith("I")
    assert np.array_equal(load_rgb(path)[..., 0], grey)
    response = api_post(api_client(), path.read_bytes(), png_bytes(np.zeros((H, W), np.uint8)))
    assert response.status_code == 200
    assert np.array_equal(np.asarray(Image.open(__import__("io").BytesIO(response.content)))[..., 0], grey)


def _stroke_mask(size: int = 96) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[20:30, 10:86] = 255
    mask[30:80, 44:54] = 255
    return mask


def test_jpeg_mask_noise_does_not_grow_the_mask(tmp_path):
    from latentpaint.data.images import load_mask

    exact = _stroke_mask()
    path = tmp_path / "mask.jpg"
    path.write_bytes(png_bytes(exact, "JPEG", quality=75))
    with pytest.warns(UserWarning, match="JPEG"):
        mask = load_mask(path)
    grown = (np.asarray(Image.open(path).convert("L")) > 0).sum() / (exact > 0).sum()
    assert grown > 1.1  # what "> 0" made of it: compression noise around every edge
    assert abs(mask.sum() / (exact > 0).sum() - 1) < 0.03


def test_jpeg_mask_upload_does_not_grow_the_mask():
    exact = _stroke_mask()
    image = np.random.default_rng(0).integers(0, 256, (*exact.shape, 3), dtype=np.uint8)
    response = api_post(api_client(), png_bytes(image), png_bytes(exact, "JPEG", quality=75))
    assert response.status_code == 200
    result = np.asarray(Image.open(__import__("io").BytesIO(response.content)))
    changed = (result != image).any(axis=2).sum()
    assert changed <= 1.03 * (exact > 0).sum()


def test_mask_with_many_grey_levels_warns(tmp_path):
    from latentpaint.data.images import load_mask

    ramp = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (8, 1))
    with pytest.warns(UserWarning, match="grey levels"):
        assert load_mask(write(tmp_path / "ramp.png", ramp)).sum() == ramp.size - 8


def test_gif_in_a_folder_is_read_not_skipped(model, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(_noise()).save(data / "a.gif")
    write(data / "a_mask000.png", box_mask())
    result = run(capsys, "predict", "--model", model, "--input", data, "--output", tmp_path / "out")
    assert result.code == 0, result.err
    assert Image.open(tmp_path / "out" / "a_mask000.png").size == (W, H)
