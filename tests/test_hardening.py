"""Hardening, rounds two (issue 11) and three (issue 20): each case failed before the fix and is one test here.

Classes: data loss (an output replacing an input or an existing file), decoders we did not choose and
image content read wrongly, memory and time bombs from tiny files, tracebacks instead of one line, and a
local server that talks to any web page. Round three: outputs that are device nodes or pipes, weights
that are not floating point, names with a newline, ambiguous masks, tracebacks in the server log when a
client hangs up, messages that blame the wrong argument, `Inpainter.predict_array`'s masks, and config
files and `--autoencoder` checkpoints that are not what they should be. The helpers and the
one-line/exit-code checks are the bad-input corpus' (tests/test_bad_input.py).
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

        with pytest.raises(LatentpaintError, match="supported image format"):
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
    inpainter = _CLIENT[key].app_inpainter if key in _CLIENT else None
    if key not in _CLIENT:
        import torch

        torch.manual_seed(0)
        inpainter = Inpainter(InpaintingNetwork("thesis", "control"))
        app = create_app(inpainter, **options)
        _CLIENT[key] = TestClient(app, base_url="http://127.0.0.1:8080")
        _CLIENT[key].app_inpainter = inpainter
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


# -- 3 (options). size options have ranges: a 100,000 px request is refused, not allocated -------------------
@pytest.mark.parametrize("command", ["visualize", "masks", "predict-resize", "experiment", "demo"])
def test_size_options_have_ranges(command, model, tmp_path, capsys):
    image, mask = pair(tmp_path / "in")
    argv = {
        "visualize": ["visualize", "--checkpoint", model, "--image", image, "--mask", mask, "--out",
                      tmp_path / "fig.png", "--size", "100000"],
        "masks": ["masks", "--preset", "thin_256", "--images", tmp_path / "in", "--out", tmp_path / "m", "--size",
                  "100000"],
        "predict-resize": ["predict", "--model", model, "--input", image, "--mask", mask, "--output",
                           tmp_path / "o", "--hd-strategy", "resize", "--hd-resize-limit", "100000"],
        "experiment": ["experiment", "table-5-1", "--steps", "1", "--size", "100000", "--out", tmp_path / "e"],
        "demo": ["demo", "--size", "100000", "--out", tmp_path / "d"],
    }[command]  # fmt: skip
    result = run(capsys, *argv)
    assert_one_error(result, "100000")
    assert not any((tmp_path / name).exists() for name in ("fig.png", "m", "o", "e", "d"))


# -- 4. one line, exit 2, for every bad option or file -------------------------------------------------------
def assert_one_error(result, *words: str) -> None:
    """Exit 2, one stderr line starting like every latentpaint error, naming `words`, no warning."""
    assert result.code == 2, (result.code, result.err)
    assert len(result.err) == 1, result.err
    assert result.err[0].startswith("latentpaint ") and ": error: " in result.err[0], result.err
    for word in words:
        assert word in result.err[0], (word, result.err)
    assert not result.warnings, result.warnings


# a data folder that does not exist: validation must fail first, and nothing can start training
TRAIN = [
    "train",
    "autoencoder",
    "--data",
    "no-such-folder",
    "--set",
    "data.num_workers=0",
    "trainer.max_steps=1",
]


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--set", "data.batch_size=abc"], ["data.batch_size", "abc"]),
        (["--set", "trainer.precision=bogus"], ["trainer.precision", "bogus"]),
        (["--set", "optim.lr=.nan"], ["optim.lr", "nan"]),
        (["--set", "optim.lr=-1"], ["optim.lr"]),
        (["--set", "data.size=100000"], ["data.size"]),
        (["--set", "trainer.progress_bar=maybe"], ["trainer.progress_bar"]),
        (["--accelerator", "tpu"], ["trainer.accelerator", "tpu"]),
        (["--devices", "two"], ["trainer.devices", "two"]),
        (["--set", "model.overrides.ngf=-1"], ["model.overrides", "ngf"]),
        (["--set", "model.overrides.n_blocks=100"], ["model.overrides", "n_blocks"]),
        (["--set", "model.overrides.bogus=1"], ["model.overrides", "bogus"]),
        (["--set", "data.size=[1"], ["data.size", "YAML"]),
        (["--set", "data.size=" + "[" * 3000], ["data.size", "nested too deeply"]),
        (["--set", "=3"], ["=3"]),
    ],
)
def test_train_bad_config_values_are_one_line(extra, words, tmp_path, capsys):
    out = tmp_path / "run"
    result = run(capsys, *TRAIN, *extra, "--out", out)
    assert_one_error(result, *words)
    assert not out.exists()


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--strategy", "bogus"], ["strategy='bogus'"]),
        (["--accelerator", "cpu", "--devices", "0,1"], ["devices='0,1'"]),
        (["--accelerator", "gpu"], ["accelerator='gpu'"]),
        (["--set", "trainer.strategy=deepspeed"], ["deepspeed"]),
    ],
)
def test_train_settings_lightning_refuses_are_one_line(extra, words, tmp_path, capsys):
    import importlib.util

    import torch

    if "gpu" in extra and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    if "trainer.strategy=deepspeed" in extra and importlib.util.find_spec("deepspeed"):
        pytest.skip("DeepSpeed is installed")
    out = tmp_path / "run"
    assert_one_error(run(capsys, *TRAIN, *extra, "--out", out), *words)
    assert not out.exists()


@pytest.mark.parametrize("loop", ["self", "pair"])
def test_config_whose_base_chain_loops(loop, tmp_path, capsys):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(f"base: {a if loop == 'self' else b}\n")
    b.write_text(f"base: {a}\n")
    result = run(capsys, "train", "autoencoder", "--config", a, "--out", tmp_path / "run")
    assert_one_error(result, "base")


def test_failed_train_leaves_no_config_or_logs_in_a_new_out(tmp_path, capsys, tiny):
    data, out = tmp_path / "data", tmp_path / "run"
    write(data / "broken.png", b"not an image")
    result = run(capsys, "train", "autoencoder", "--data", data, "--out", out, "--set", *tiny.sets(size=32))
    assert_one_error(result, str(data))
    assert not out.exists()


def test_failed_train_keeps_an_existing_out(tmp_path, capsys, tiny):
    data, out = tmp_path / "data", tmp_path / "run"
    write(data / "broken.png", b"not an image")
    write(out / "notes.txt", b"mine")
    run(capsys, "train", "autoencoder", "--data", data, "--out", out, "--set", *tiny.sets(size=32))
    assert (out / "notes.txt").read_bytes() == b"mine"


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--device", "meta"], ["meta"]),
        (["--hd-crop-margin", "-1"], ["--hd-crop-margin", "-1"]),
        (["--hd-crop-trigger", "0"], ["--hd-crop-trigger"]),
        (["--hd-resize-limit", "abc"], ["--hd-resize-limit", "abc"]),
    ],
)
def test_predict_bad_options_fail_once_up_front(extra, words, model, tmp_path, capsys):
    data = tmp_path / "data"
    for stem in ("a", "b", "c"):
        pair(data, stem)
    out = tmp_path / "out"
    result = run(capsys, "predict", "--model", model, "--input", data, "--mask", data / "a_mask.png",
                 "--output", out, *extra)  # fmt: skip
    assert_one_error(result, *words)
    assert not out.exists()


@pytest.mark.parametrize("value", ["nan", "inf", "lots"])
@pytest.mark.parametrize("flag", ["--max-upload-mb", "--max-megapixels"])
def test_serve_bad_limits(flag, value, model, capsys):
    assert_one_error(run(capsys, "serve", "--model", model, flag, value), flag)


def test_plain_pickle_says_it_is_not_a_torch_file(tmp_path, capsys):
    import pickle

    path = tmp_path / "model.ckpt"
    path.write_bytes(pickle.dumps({"state_dict": {"weight": [1.0, 2.0]}}))
    image, mask = pair(tmp_path)
    result = run(
        capsys, "predict", "--model", path, "--input", image, "--mask", mask, "--output", tmp_path / "o"
    )
    assert_one_error(result, str(path), "plain Python pickle")


@pytest.mark.parametrize("model_section", ["missing", "not-a-mapping", "incomplete", "bad-ngf"])
def test_checkpoint_without_a_usable_model_config(model_section, tmp_path, capsys):
    import torch

    from test_bad_input import _training_checkpoint

    checkpoint = _training_checkpoint(_small_network(), "alpha")
    config = checkpoint["hyper_parameters"]["config"]
    if model_section == "missing":
        del config["model"]
    elif model_section == "not-a-mapping":
        config["model"] = 5
    elif model_section == "incomplete":
        del config["model"]["arch"]
    else:
        config["model"]["overrides"]["ngf"] = -1
    path = tmp_path / "run.ckpt"
    torch.save(checkpoint, path)
    image, mask = pair(tmp_path)
    for argv in (
        ["predict", "--model", path, "--input", image, "--mask", mask, "--output", tmp_path / "o"],
        ["visualize", "--checkpoint", path, "--image", image, "--mask", mask, "--out", tmp_path / "v.png"],
        ["export", "--checkpoint", path, "--format", "safetensors", "--out", tmp_path / "rel"],
    ):
        assert_one_error(run(capsys, *argv), str(path))
    assert not [p for p in tmp_path.iterdir() if p.name in ("o", "v.png", "rel")]


@pytest.mark.parametrize("value", ["nan", "inf"])
@pytest.mark.parametrize("kind", ["release", "training-ckpt"])
def test_weights_with_nan_or_inf_are_refused(kind, value, tmp_path, capsys):
    import torch

    from test_bad_input import _training_checkpoint

    network = _small_network()
    with torch.no_grad():
        next(network.parameters()).view(-1)[0] = float(value)
    if kind == "release":
        path = save_release(network, tmp_path / "rel")
        named = path / WEIGHTS_NAME
    else:
        path = named = tmp_path / "run.ckpt"
        torch.save(_training_checkpoint(network, "alpha"), path)
    image, mask = pair(tmp_path)
    result = run(
        capsys, "predict", "--model", path, "--input", image, "--mask", mask, "--output", tmp_path / "o"
    )
    assert_one_error(result, str(named), "NaN or infinite")
    assert not (tmp_path / "o").exists()


def test_foreign_library_warnings_stay_out_of_the_terminal(model, tmp_path, capsys, monkeypatch):
    import warnings

    import latentpaint.devices as devices

    resolve = devices.resolve_device

    def noisy(name):  # what torch's own modules emit now and then: about torch, not the user's input
        warnings.warn_explicit(
            "TypedStorage is deprecated", UserWarning, "torch/storage.py", 1, "torch.storage"
        )
        warnings.warn_explicit("an internal note", UserWarning, "lightning/x.py", 1, "lightning.fabric.x")
        return resolve(name)

    monkeypatch.setattr(devices, "resolve_device", noisy)
    image, mask = pair(tmp_path)
    result = run(
        capsys, "predict", "--model", model, "--input", image, "--mask", mask, "--output", tmp_path / "o"
    )
    assert result.code == 0 and not result.warnings and not result.err


def test_our_warnings_are_one_line(tmp_path, capsys):
    import subprocess
    import sys

    exact = _stroke_mask(48)
    image = write(tmp_path / "x.png", np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8))
    mask = tmp_path / "m.jpg"
    mask.write_bytes(png_bytes(exact, "JPEG", quality=60))
    done = subprocess.run(
        [sys.executable, "-m", "latentpaint", "predict", "--method", "opencv-telea", "--input", image, "--mask",
         mask, "--output", tmp_path / "o"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("latentpaint: warning: mask") and "JPEG" in lines[0], lines


# -- 3 (time). a dotted mask with --hd-strategy crop: crops merged or capped, and the fallback said ------------
def _dotted(height: int, width: int, step: int) -> np.ndarray:
    mask = np.zeros((height, width), np.float32)
    mask[::step, ::step] = 1
    return mask


class Calls:
    """A predictor that records the size of each call and fills with grey."""

    def __init__(self):
        self.sizes = []

    def __call__(self, image, mask):
        self.sizes.append(image.shape[:2])
        return np.full_like(image, 128)


@pytest.mark.parametrize("size, strategy", [((900, 1000), "original"), ((1500, 2000), "resize")])
def test_dotted_mask_crop_falls_back_and_says_so(size, strategy):
    from latentpaint.inference.hd import inpaint_hd

    image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    mask = _dotted(*size, step=9)  # about 10,000 one-pixel regions
    calls = Calls()
    with pytest.warns(UserWarning, match=f"used --hd-strategy {strategy}"):
        out = inpaint_hd(calls, image, mask, "crop")
    assert len(calls.sizes) == 1
    assert np.array_equal(out[mask == 0], image[mask == 0]) and (out[mask > 0] == 128).all()


def test_overlapping_crop_windows_are_merged():
    from latentpaint.inference.hd import inpaint_hd

    image = np.random.default_rng(0).integers(0, 256, (1000, 1200, 3), dtype=np.uint8)
    mask = np.zeros((1000, 1200), np.float32)
    mask[100:300:20, 100:300:20] = 1  # 100 dots close together: one crop around them all
    mask[800, 1000] = 1  # and one far away
    calls = Calls()
    out = inpaint_hd(calls, image, mask, "crop")
    assert len(calls.sizes) == 2
    assert np.array_equal(out[mask == 0], image[mask == 0]) and (out[mask > 0] == 128).all()


def test_predict_dotted_mask_is_fast_and_says_which_strategy(model, tmp_path, capsys):
    image = write(
        tmp_path / "x.png", np.random.default_rng(0).integers(0, 256, (850, 900, 3), dtype=np.uint8)
    )
    mask = write(tmp_path / "m.png", (_dotted(850, 900, 7) * 255).astype(np.uint8))
    result = run(
        capsys, "predict", "--model", model, "--input", image, "--mask", mask, "--output", tmp_path / "o"
    )
    assert result.code == 0, result.err
    assert len(result.warnings) == 1 and "used --hd-strategy original" in result.warnings[0]


# -- 3 (server). work per request is bounded, and running out of memory is a 503 with a sentence -------------
def test_server_bounds_what_the_network_sees(monkeypatch):
    budget = 32 * 32
    client = api_client(max_inference_pixels=budget)
    inpainter = client.app_inpainter
    seen = []
    real = type(inpainter).predict_array

    def record(self, image, mask):
        seen.append(image.shape[0] * image.shape[1])
        return real(self, image, mask)

    monkeypatch.setattr(type(inpainter), "predict_array", record)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    for mask, strategy in (
        (_with_box(90, 120, (10, 20, 14, 26)), "crop"),  # a small hole: one crop around it
        (_with_box(90, 120, (0, 90, 0, 120)), "resize"),  # the whole image: a resized copy
    ):
        seen.clear()
        response = api_post(client, png_bytes(image), png_bytes(mask))
        assert response.status_code == 200 and response.headers["x-hd-strategy"] == strategy
        assert seen and max(seen) <= budget
        result = np.asarray(Image.open(__import__("io").BytesIO(response.content)))
        assert result.shape == image.shape and np.array_equal(result[mask == 0], image[mask == 0])
    seen.clear()
    response = api_post(client, png_bytes(image), png_bytes(_with_box(90, 120, (0, 90, 0, 120))),
                        path="/api/latent-damage")  # fmt: skip
    assert response.status_code == 200 and response.headers["x-hd-strategy"] == "resize"


def _with_box(height: int, width: int, box: tuple[int, int, int, int]) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[box[0] : box[1], box[2] : box[3]] = 255
    return mask


def test_server_default_inference_budget_is_measured_not_40_megapixels():
    limits = api_client().get("/api/health").json()["limits"]
    assert limits["max_pixels"] == 40_000_000  # what an upload may be
    assert limits["max_inference_pixels"] == 4_000_000  # what the network sees at once


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory: you tried to "
                     "allocate 10737418240 bytes."),
        MemoryError(),
        __import__("cv2").error("OpenCV(5.0.0) alloc.cpp:73: error: (-4:Insufficient memory) Failed to allocate"),
    ],
)  # fmt: skip
def test_server_out_of_memory_is_503_not_500(error, monkeypatch):
    client = api_client()

    def fail(self, image, mask):
        raise error

    inpainter = client.app_inpainter
    monkeypatch.setattr(type(inpainter), "predict_array", fail)
    response = api_post(client, png_bytes(_noise()), png_bytes(box_mask()))
    assert response.status_code == 503 and "memory" in response.json()["detail"]


# -- 5. the server only talks to its own page -----------------------------------------------------------------
@pytest.mark.parametrize(
    "headers, allowed",
    [
        ({}, True),  # curl, scripts: no Origin
        ({"host": "localhost:8080"}, True),
        ({"host": "[::1]:8080"}, True),
        ({"origin": "http://127.0.0.1:8080"}, True),  # the page itself
        ({"host": "evil.example:8080"}, False),  # DNS rebinding: a foreign name resolving to 127.0.0.1
        ({"host": "evil.example"}, False),
        ({"origin": "https://evil.example"}, False),  # another web page posting to the server
        ({"origin": "null"}, False),  # sandboxed frames, file:// pages
        ({"origin": "http://127.0.0.1:9999"}, False),  # another local server's page
        ({"sec-fetch-site": "cross-site"}, False),
    ],
)
@pytest.mark.parametrize("path", ["/api/inpaint", "/api/health", "/"])
def test_server_refuses_foreign_hosts_and_origins(headers, allowed, path):
    client = api_client()
    if path == "/api/inpaint":
        response = api_post(client, png_bytes(_noise()), png_bytes(box_mask()), headers=headers)
    else:
        response = client.get(path, headers=headers)
    if allowed:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 403 and response.json()["detail"]


def test_server_allowed_host_option():
    client = api_client(allowed_hosts=("myserver.lan",))
    assert client.get("/api/health", headers={"host": "myserver.lan:8080"}).status_code == 200
    assert client.get("/api/health", headers={"host": "other.lan:8080"}).status_code == 403
    assert api_client(allowed_hosts=("*",)).get("/api/health", headers={"host": "x.y"}).status_code == 200


def test_serve_cli_allowed_host_reaches_the_app(model, capsys, monkeypatch):
    import uvicorn

    import latentpaint.server.cli as serve_cli

    served = {}
    real_listen = serve_cli.listen
    monkeypatch.setattr(serve_cli, "listen", lambda host, port: real_listen("127.0.0.1", port))
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: served.update(app=self.config.app))
    result = run(capsys, "serve", "--model", model, "--host", "0.0.0.0", "--port", "0", "--allowed-host",
                 "box.lan", "--max-inference-megapixels", "2")  # fmt: skip
    assert result.code == 0 and "--allowed-host" in "\n".join(result.err)
    from fastapi.testclient import TestClient

    with TestClient(served["app"], base_url="http://box.lan:8080") as client:
        health = client.get("/api/health")
        assert health.status_code == 200 and health.json()["limits"]["max_inference_pixels"] == 2_000_000
        assert client.get("/api/health", headers={"host": "evil.example"}).status_code == 403


# -- 0. the README's commands set up what the tests need ----------------------------------------------------
def test_make_test_installs_the_browser_itself():
    import shutil
    import subprocess

    root = Path(__file__).resolve().parents[1]
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    # -n prints the recipes without running them; the stamp is treated as fresh so pip is not listed
    plan = subprocess.run(
        ["make", "-n", "-o", ".venv/.installed", "test"], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert plan.returncode == 0, plan.stderr
    assert "command -v chromium" in plan.stdout and "apt-get install -y" in plan.stdout
    assert plan.stdout.index("apt-get install") < plan.stdout.index("pytest")
    ci = (root / ".ci" / "run").read_text()
    assert "apt-get" not in ci and "make lint" in ci and "make test" in ci


# == round three (issue 20) =================================================================================
# -- 6. an output that exists and is not a regular file is never replaced (files.check_output_file) ----------
SPECIAL = ["fifo", "char-device"]


def _special(kind: str, path: Path) -> Path:
    """A named pipe, or a link to a character device (os.devnull: only the link could ever be replaced)."""
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(os.devnull)
    return path


def _still_special(kind: str, path: Path) -> bool:
    import os
    import stat

    if kind == "fifo":
        return stat.S_ISFIFO(path.lstat().st_mode)
    return path.is_symlink() and os.readlink(path) == os.devnull


def _special_output_argv(command: str, target: Path, model: Path, tmp_path: Path) -> list:
    """The command line of `command` with `target` (or the file it would write) as its output."""
    image, mask = pair(tmp_path / "in")
    data = tmp_path / "data"
    write(data / "a.png", _noise())
    write(data / "a_mask000.png", box_mask())
    write(tmp_path / "pred" / "a_mask000.png", _noise(seed=2))
    write(tmp_path / "photos" / "a.png", _noise(40, 40))
    return {
        "predict": ["predict", "--model", model, "--input", data, "--output", target.parent, "--overwrite"],
        "predict-folder": ["predict", "--model", model, "--input", data, "--output", target],
        "evaluate": ["evaluate", "--data", data, "--predictions", tmp_path / "pred", "--metrics", "ssim", "--out",
                     target, "--overwrite"],
        "visualize": ["visualize", "--checkpoint", model, "--image", image, "--mask", mask, "--out", target,
                      "--overwrite"],
        "export-onnx": ["export", "--checkpoint", model, "--format", "onnx", "--out", target, "--overwrite"],
        "export-safetensors": ["export", "--checkpoint", model, "--format", "safetensors", "--out", target],
        "masks": ["masks", "--preset", "thin_256", "--size", "32", "--images", tmp_path / "photos", "--out",
                  target.parent, "--overwrite"],
        "masks-folder": ["masks", "--preset", "thin_256", "--size", "32", "--images", tmp_path / "photos", "--out",
                         target],
        "experiment": ["experiment", "table-5-1", "--steps", "1", "--out", target],
        "demo": ["demo", "--steps", "1", "--autoencoder-steps", "1", "--out", target],
        "data": ["data", "photos", "--out", target],
        "train": [*TRAIN, "--out", target.parent],
    }[command]  # fmt: skip


@pytest.mark.timeout(60)  # a pipe opened by mistake would block forever
@pytest.mark.parametrize("kind", SPECIAL)
@pytest.mark.parametrize(
    "command",
    ["predict", "predict-folder", "evaluate", "visualize", "export-onnx", "export-safetensors", "masks",
     "masks-folder", "experiment", "demo", "data", "train"],
)  # fmt: skip
def test_outputs_that_are_not_regular_files_are_never_replaced(command, kind, model, tmp_path, capsys):
    # predict and masks write OUT/a_mask000.png, train OUT/config.yaml: that one is the pipe or device
    name = {"predict": "a_mask000.png", "masks": "a_mask000.png", "train": "config.yaml"}.get(
        command, "target"
    )
    target = _special(kind, tmp_path / "out" / name)
    result = run(capsys, *_special_output_argv(command, target, model, tmp_path))
    flag = "--output" if command.startswith("predict") else "--out"
    assert_one_error(result, flag, str(target), "named pipe" if kind == "fifo" else "character device")
    assert _still_special(kind, target)
    assert [p.name for p in target.parent.iterdir()] == [name]  # no temp file left, nothing else written


def test_a_link_to_an_open_file_is_never_replaced(model, tmp_path, capsys):
    # what /dev/stdout is when output goes to a file: it looks regular, but the rename would replace the
    # system's link (here a link of our own, so that nothing but it could be lost)
    image, mask = pair(tmp_path / "in")
    with open(tmp_path / "log.txt", "w") as log:
        link = tmp_path / "stdout"
        link.symlink_to(f"/proc/self/fd/{log.fileno()}")
        assert link.is_file()
        result = run(capsys, "visualize", "--checkpoint", model, "--image", image, "--mask", mask, "--out", link,
                     "--overwrite")  # fmt: skip
    assert_one_error(result, "--out", str(link), "/proc")
    assert link.is_symlink() and (tmp_path / "log.txt").read_bytes() == b""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", SPECIAL)
def test_every_atomic_write_refuses_what_is_not_a_regular_file(kind, tmp_path):
    from latentpaint.data.images import save_image
    from latentpaint.errors import LatentpaintError
    from latentpaint.files import atomic_write_bytes

    target = _special(kind, tmp_path / "x.png")
    for write_it in (lambda: atomic_write_bytes(target, b"data"), lambda: save_image(target, _noise())):
        with pytest.raises(LatentpaintError, match="not a regular file"):
            write_it()
    assert _still_special(kind, target) and [p.name for p in tmp_path.iterdir()] == ["x.png"]


# -- 7. weights are floating point (storage.state.load_state_strict) ---------------------------------------
def _cast_floats(network, dtype) -> dict:
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in network.state_dict().items()}


@pytest.mark.parametrize("dtype", ["bool", "int8", "uint8"])
@pytest.mark.parametrize("kind", ["release", "training-ckpt"])
def test_weights_that_are_not_floating_point_are_refused(kind, dtype, tmp_path, capsys):
    import torch
    from safetensors.torch import save_file

    from test_bad_input import _training_checkpoint

    network = _small_network()
    state = _cast_floats(network, getattr(torch, dtype))
    if kind == "release":
        path = save_release(network, tmp_path / "rel")
        named = path / WEIGHTS_NAME
        save_file(state, str(named))
    else:
        path = named = tmp_path / "run.ckpt"
        checkpoint = _training_checkpoint(network, "alpha")
        checkpoint["state_dict"] = {f"network.{k}": v for k, v in state.items()}
        torch.save(checkpoint, path)
    image, mask = pair(tmp_path)
    out = tmp_path / "o"
    result = run(capsys, "predict", "--model", path, "--input", image, "--mask", mask, "--output", out)
    assert_one_error(result, str(named), "not floating point", f"as {dtype}")
    bad = result.err[0].split("e.g. ", 1)[1].split(" as ")[0]
    assert bad.strip("'") in network.state_dict()  # the message names a tensor of the network
    assert not out.exists()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_weights_still_load(dtype, tmp_path, capsys):
    import torch
    from safetensors.torch import save_file

    network = _small_network()
    release = save_release(network, tmp_path / "rel")
    save_file(_cast_floats(network, getattr(torch, dtype)), str(release / WEIGHTS_NAME))
    image, mask = pair(tmp_path)
    result = run(
        capsys, "predict", "--model", release, "--input", image, "--mask", mask, "--output", tmp_path / "o"
    )
    assert result.code == 0 and not result.err, result.err


# -- 8. names with a newline: paired by the one rule, and quoted in every message ------------------------------
def test_mask_owner_reads_the_whole_stem():
    from latentpaint.data.pairs import mask_owner

    assert mask_owner(Path("a\nb_mask000.png")) == "a\nb"
    assert mask_owner(Path("a\nb.png")) is None
    assert mask_owner(Path("a_mask\n.png")) is None  # "$" matched before the final newline


def test_names_with_a_newline_are_paired(model, tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    write(data / "a\nb.png", _noise())
    write(data / "a\nb_mask000.png", box_mask())
    result = run(capsys, "predict", "--model", model, "--input", data, "--output", out)
    assert result.code == 0 and not result.err, result.err
    assert [p.name for p in out.iterdir()] == ["a\nb_mask000.png"]
    result = run(capsys, "evaluate", "--data", data, "--predictions", out, "--metrics", "psnr")
    assert result.code == 0 and "pairs: 1" in result.out, result.err


@pytest.mark.parametrize(
    "command", ["predict-file", "predict-folder", "predict-missing", "evaluate", "masks"]
)
def test_names_with_a_newline_never_split_a_message(command, model, tmp_path, capsys):
    data = tmp_path / "data"
    broken = write(data / "c\nd.png", b"not an image")
    mask = write(tmp_path / "m.png", box_mask())
    out = tmp_path / "out"
    argv, code, named = {
        "predict-file": (["predict", "--model", model, "--input", broken, "--mask", mask, "--output", out], 1,
                         broken),
        "predict-folder": (["predict", "--model", model, "--input", data, "--output", out], 1, broken),
        "predict-missing": (["predict", "--model", model, "--input", data / "no\nsuch.png", "--mask", mask,
                             "--output", out], 2, data / "no\nsuch.png"),
        "evaluate": (["evaluate", "--data", data, "--predictions", tmp_path, "--metrics", "psnr"], 2,
                     data / "e\nf_mask000.png"),
        "masks": (["masks", "--preset", "thin_256", "--size", "32", "--images", data, "--out", out], 2, broken),
    }[command]  # fmt: skip
    if command == "predict-folder":
        write(data / "c\nd_mask000.png", box_mask())
    if command == "evaluate":  # a mask whose image is missing
        write(named, box_mask())
    result = run(capsys, *argv)
    assert result.code == code, result.err
    assert len(result.err) == 1, result.err
    assert repr(str(named)) in result.err[0], result.err  # 'data/c\nd.png', escaped


# -- 9. two masks for one image are refused, as two images for one output are --------------------------------
@pytest.mark.parametrize("image_name", ["x.png", "x.jpg", "x.webp", "file x.png"])
def test_two_masks_for_one_image_are_refused(image_name, model, tmp_path, capsys):
    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    image = images / image_name.removeprefix("file ")
    Image.fromarray(_noise()).save(write(image, b""))
    write(masks / "x.png", box_mask())
    Image.fromarray(box_mask()).save(masks / "x.jpg")
    source = image if image_name.startswith("file ") else images
    result = run(capsys, "predict", "--model", model, "--input", source, "--mask", masks, "--output", out)
    assert_one_error(result, "--mask", str(masks / "x.png"), str(masks / "x.jpg"))
    assert not out.exists()


# -- 10. a client hanging up mid-upload: one log line at most, never a traceback ----------------------------
@pytest.mark.timeout(60)
def test_client_hanging_up_mid_upload_logs_no_traceback():
    import http.client
    import logging
    import socket
    import threading
    import time

    import uvicorn

    from latentpaint.server.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    port = sock.getsockname()[1]
    # as `latentpaint serve` runs it
    server = uvicorn.Server(uvicorn.Config(create_app(api_client().app_inpainter), log_level="warning",
                                           access_log=False))  # fmt: skip
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    records: list[logging.LogRecord] = []
    keep = logging.Handler(logging.DEBUG)
    keep.emit = records.append
    ours = logging.getLogger("latentpaint")
    loggers = [logging.getLogger("uvicorn"), ours]  # uvicorn.error's records reach uvicorn's handlers
    level = ours.level
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        for logger in loggers:  # after uvicorn configured its loggers
            logger.addHandler(keep)
        ours.setLevel(logging.INFO)  # our line counts even though the default level would hide it
        part = b'--xyz\r\nContent-Disposition: form-data; name="%s"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
        cuts = [
            part % b"image" + b"x" * 1000,
            part % b"image" + png_bytes(_noise()) + b"\r\n" + part % b"mask" + b"x",
        ]
        for body in cuts:  # in the first file, and in the second
            with socket.create_connection(("127.0.0.1", port)) as client:
                client.sendall(
                    f"POST /api/inpaint HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 100000\r\n"
                    "Content-Type: multipart/form-data; boundary=xyz\r\n\r\n".encode()
                    + body
                )
                time.sleep(0.1)
        deadline = time.monotonic() + 5
        while len(records) < len(cuts) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        assert len(records) <= len(cuts), [r.getMessage() for r in records]
        for record in records:
            assert record.exc_info is None and "\n" not in record.getMessage(), record.getMessage()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # and the server still answers
        connection.request("GET", "/api/health")
        assert connection.getresponse().status == 200
        connection.close()
    finally:
        for logger in loggers:
            logger.removeHandler(keep)
        ours.setLevel(level)
        server.should_exit = True
        thread.join(10)
        sock.close()


# -- 11. each message names the argument at fault and what it expected; no errno text ---------------------------
@pytest.mark.parametrize("stage, other", [("inpainting", "autoencoder"), ("autoencoder", "inpainting")])
def test_resume_from_the_other_stage_blames_the_checkpoint(stage, other, tmp_path, capsys):
    import torch

    checkpoint = tmp_path / "other.ckpt"
    torch.save({"hyper_parameters": {"config": {"stage": other}}, "state_dict": {}}, checkpoint)
    out = tmp_path / "run"
    result = run(capsys, "train", stage, "--resume", checkpoint, "--out", out)
    found, wanted = ("stage-1", "stage-2") if other == "autoencoder" else ("stage-2", "stage-1")
    assert_one_error(result, "--resume", str(checkpoint), found, wanted)
    assert "config" not in result.err[0]  # no --config was given: the preset is not at fault
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["predict", "--model", "DEV", "--input", "IMAGE", "--mask", "MASK", "--output", "OUT"], "model"),
        (["export", "--checkpoint", "DEV", "--format", "safetensors", "--out", "OUT"], "model"),
        (["visualize", "--checkpoint", "DEV", "--image", "IMAGE", "--mask", "MASK", "--out", "OUT"], "model"),
        (["visualize", "--checkpoint", "MODEL", "--image", "DEV", "--mask", "MASK", "--out", "OUT"], "image"),
        (["predict", "--model", "MODEL", "--input", "DEV", "--mask", "MASK", "--output", "OUT"], "--input"),
        (["predict", "--model", "MODEL", "--input", "IMAGE", "--mask", "DEV", "--output", "OUT"], "--mask"),
        (["train", "inpainting", "--resume", "DEV", "--out", "OUT"], "--resume"),
        (["evaluate", "--data", "DEV", "--predictions", "IN", "--metrics", "psnr", "--out", "OUT"], "--data"),
        (
            ["evaluate", "--data", "IN", "--predictions", "DEV", "--metrics", "psnr", "--out", "OUT"],
            "--predictions",
        ),
        (["masks", "--preset", "thin_256", "--images", "DEV", "--out", "OUT"], "--images"),
    ],
)
def test_a_device_is_named_as_what_it_is_not_as_missing(argv, flag, model, tmp_path, capsys):
    import os

    image, mask = pair(tmp_path)
    names = {"DEV": os.devnull, "IMAGE": image, "MASK": mask, "OUT": tmp_path / "out", "MODEL": model,
             "IN": image.parent}  # fmt: skip
    result = run(capsys, *(names.get(a, a) for a in argv))
    assert_one_error(result, flag, repr(os.devnull), "character device")
    assert "does not exist" not in result.err[0] and "nothing to resume" not in result.err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.timeout(30)  # before the fix the read blocked on the pipe (and a link to /dev/zero ate memory)
def test_a_release_config_that_is_a_pipe_is_refused_unread(tmp_path, capsys):
    release = save_release(_small_network(), tmp_path / "rel")
    (release / CONFIG_NAME).unlink()
    _special("fifo", release / CONFIG_NAME)
    image, mask = pair(tmp_path)
    result = run(
        capsys, "predict", "--model", release, "--input", image, "--mask", mask, "--output", tmp_path / "o"
    )
    assert_one_error(result, str(release / CONFIG_NAME), "named pipe")


@pytest.mark.parametrize(
    "command", ["predict", "masks", "export", "demo", "experiment", "data", "train", "visualize", "evaluate"]
)
def test_an_output_folder_that_is_a_file_is_named_without_errno(command, model, tmp_path, capsys):
    blocker = write(tmp_path / "taken", b"mine")
    image, mask = pair(tmp_path / "in")
    write(tmp_path / "photos" / "a.png", _noise(40, 40))
    data, predictions = _eval_folders(tmp_path)
    argv = {
        "predict": ["predict", "--model", model, "--input", image, "--mask", mask, "--output", blocker],
        "masks": ["masks", "--preset", "thin_256", "--size", "32", "--images", tmp_path / "photos", "--out", blocker],
        "export": ["export", "--checkpoint", model, "--format", "safetensors", "--out", blocker],
        "demo": ["demo", "--steps", "1", "--out", blocker],
        "experiment": ["experiment", "table-5-1", "--steps", "1", "--out", blocker],
        "data": ["data", "photos", "--out", blocker],
        "train": [*TRAIN, "--out", blocker],
        "visualize": ["visualize", "--checkpoint", model, "--image", image, "--mask", mask, "--out",
                      blocker / "figure.png"],
        "evaluate": ["evaluate", "--data", data, "--predictions", predictions, "--metrics", "ssim", "--out",
                     blocker / "results.json"],
    }[command]  # fmt: skip
    result = run(capsys, *argv)
    flag = "--output" if command == "predict" else "--out"
    assert_one_error(result, flag, repr(str(blocker)), "regular file", "folder")
    assert "Errno" not in result.err[0]
    assert blocker.read_bytes() == b"mine"


def test_os_errors_read_as_sentences():
    import errno

    from latentpaint.errors import os_error_text

    text = os_error_text(OSError(errno.ENOSPC, "No space left on device", "out/a\nb.png"))
    assert text == "'out/a\\nb.png': No space left on device"


# -- 12. Inpainter.predict_array takes the masks __call__ takes ------------------------------------------------
def test_predict_array_takes_uint8_and_bool_masks():
    import torch

    from latentpaint.errors import LatentpaintError
    from latentpaint.inference.inpainter import Inpainter
    from latentpaint.models.network import InpaintingNetwork

    torch.manual_seed(0)
    inpainter = Inpainter(InpaintingNetwork("thesis", "control", n_blocks=2))  # mask control: the matmul
    image, box = _noise(), box_mask()
    expected = inpainter(image, box)
    assert not np.array_equal(expected, image)
    for mask in (box, (box > 0).astype(np.uint8), box > 0, (box > 0).astype(np.float32)):
        assert np.array_equal(inpainter.predict_array(image, mask), expected), mask.dtype
    for bad_image, bad_mask in ((image.astype(np.float32), box), (image, box[None, None]), (image, box[:5])):
        with pytest.raises(LatentpaintError):
            inpainter.predict_array(bad_image, bad_mask)


# -- 13. config files and --autoencoder, after the typed config (issue 21) came in ------------------------------
def _not_a_file(kind: str, path: Path) -> Path:
    """A named pipe, or a link to /dev/zero (read forever) or /dev/null: a config's would-be path."""
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero" if kind == "zero" else os.devnull)
    return path


@pytest.mark.timeout(60)  # before the fix a pipe without .yaml was "no config", with it no flag was named
@pytest.mark.parametrize("kind", ["fifo", "zero", "null"])
@pytest.mark.parametrize("name", ["run.yaml", "run"])
@pytest.mark.parametrize("command", ["train", "config"])
def test_a_config_that_is_not_a_file_is_refused_unread_naming_the_flag(command, name, kind, tmp_path, capsys):
    path = _not_a_file(kind, tmp_path / name)
    flag = {"train": "--config", "config": "--preset"}[command]
    argv = ["train", "autoencoder", "--config", path, "--out", tmp_path / "out"]
    result = run(capsys, *(argv if command == "train" else ["config", "--preset", path]))
    assert_one_error(result, flag, repr(str(path)), "named pipe" if kind == "fifo" else "character device")
    assert not (tmp_path / "out").exists()


@pytest.mark.timeout(60)  # before the fix a base without .yaml was "no config", with it "config base" unsaid
@pytest.mark.parametrize("name", ["base.yaml", "base"])
def test_a_config_base_that_is_not_a_file_is_named_as_the_base(name, tmp_path, capsys):
    base = _not_a_file("fifo", tmp_path / name)
    preset = write(tmp_path / "run.yaml", f"base: {base}\n".encode())
    result = run(capsys, "train", "autoencoder", "--config", preset, "--out", tmp_path / "out")
    assert_one_error(result, "config base", repr(str(base)), "named pipe")
    assert not (tmp_path / "out").exists()


def test_a_config_read_is_bounded_whatever_stat_says(tmp_path, capsys, monkeypatch):
    # /proc files report size 0: /proc/self/pagemap holds terabytes, so the read itself must stop at the
    # limit (here lowered, and /proc/self/maps, so that a regression cannot eat the machine's memory)
    from latentpaint.storage import torchfile

    if not Path("/proc/self/maps").is_file():
        pytest.skip("no /proc")
    monkeypatch.setattr(torchfile, "MAX_CONFIG_BYTES", 64)
    link = tmp_path / "run.yaml"
    link.symlink_to("/proc/self/maps")
    result = run(capsys, "train", "autoencoder", "--config", link, "--out", tmp_path / "out")
    assert_one_error(result, "--config", repr(str(link)), "over 64 bytes")


@pytest.mark.timeout(60)  # before the fix save_config's write_text blocked on the pipe
@pytest.mark.parametrize("kind", SPECIAL)
def test_config_yaml_is_written_atomically_never_into_a_pipe_or_device(kind, tmp_path):
    from latentpaint.errors import LatentpaintError
    from latentpaint.training.presets import load_preset, save_config

    target = _special(kind, tmp_path / "config.yaml")
    with pytest.raises(LatentpaintError, match="not a regular file"):
        save_config(load_preset("autoencoder"), target)
    assert _still_special(kind, target)
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]  # no temp file left


@pytest.mark.timeout(120)  # before the fix the experiment's run blocked writing into the pipe
@pytest.mark.parametrize("content", ["fifo", "a: [\n"])
def test_an_experiment_run_config_is_read_only_if_a_regular_file(content, tmp_path, capsys):
    # a resumable run folder's config.yaml, compared with today's settings: read bounded, never a pipe, and a
    # broken one is a sentence naming it (it was "cannot parse YAML" naming nothing)
    out = tmp_path / "exp"
    path = out / "autoencoder" / "config.yaml"
    if content == "fifo":
        _special("fifo", path)
    else:
        write(path, content.encode())
    result = run(capsys, "experiment", "table-5-1", "--steps", "1", "--out", out)
    assert_one_error(result, repr(str(path)), "named pipe" if content == "fifo" else "YAML")


@pytest.mark.parametrize("given", ["stage-2", "device", "missing"])
@pytest.mark.parametrize("command", ["train", "experiment"])
def test_autoencoder_errors_name_the_flag(command, given, tmp_path, capsys):
    import os

    import torch

    checkpoint = {"device": Path(os.devnull), "missing": tmp_path / "missing.ckpt"}.get(
        given, tmp_path / "s2.ckpt"
    )
    torch.save(
        {"hyper_parameters": {"config": {"stage": "inpainting"}}, "state_dict": {}}, tmp_path / "s2.ckpt"
    )
    data, out = tmp_path / "data", tmp_path / "out"
    write(data / "a.png", _noise(40, 40))
    argv = {
        "train": ["train", "inpainting", "--autoencoder", checkpoint, "--data", data, "--out", out, "--set",
                  "data.num_workers=0", "trainer.max_steps=1", "data.size=32"],
        "experiment": ["experiment", "table-5-1", "--steps", "1", "--autoencoder", checkpoint, "--out", out],
    }[command]  # fmt: skip
    result = run(capsys, *argv)
    words = {"stage-2": ["stage-2"], "device": ["character device"], "missing": ["does not exist"]}[given]
    assert_one_error(result, "--autoencoder", repr(str(checkpoint)), "stage-1", *words)
    if command == "train":
        assert not out.exists()
