"""Bad input, end to end: one line naming the file, the right exit code, no traceback, no half-written output.

The corpus is built here (nothing downloaded): broken files (empty, truncated, text, oversized headers),
odd but valid images (16-bit, CMYK, RGBA, palette, grey, 1x1), odd masks, empty folders and checkpoints
that are truncated, of another architecture or carry a pickled object that would run code. Each goes
through the commands that read it (`predict`, `evaluate`, `masks`, `train`) and the REST API.
"""

import io
import json
import os
import struct
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentpaint.cli import main
from latentpaint.data.images import load_mask
from latentpaint.inference.checkpoints import CONFIG_NAME, WEIGHTS_NAME, save_release
from latentpaint.models.network import InpaintingNetwork

H, W = 20, 24  # corpus images; not a multiple of 8 on purpose


# -- corpus ---------------------------------------------------------------------------------------------
def _noise(h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    """Random colours in the top half, black below: as a mask it fills the top and keeps the bottom."""
    array = np.random.default_rng(seed).integers(1, 256, (h, w, 3), dtype=np.uint8)
    array[h // 2 :] = 0
    return array


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height RGB pixels, with a few bytes of data: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _sixteen_bit() -> bytes:
    image = Image.fromarray(_noise()[..., 0].astype(np.uint16) * 257)  # mode I;16
    assert image.mode == "I;16"
    return _encode(image, "PNG")


@dataclass(frozen=True)
class Case:
    """A corpus file: its bytes, its extension, and whether latentpaint must accept it."""

    make: Callable[[], bytes]
    suffix: str
    valid: bool
    size: tuple[int, int] = (W, H)  # (width, height) of a valid file


RGB = Image.fromarray(_noise())
CORPUS: dict[str, Case] = {
    "zero-byte": Case(lambda: b"", ".png", False),
    "truncated-png": Case(lambda: _half(_encode(RGB, "PNG")), ".png", False),
    "truncated-jpeg": Case(lambda: _half(_encode(RGB, "JPEG")), ".jpg", False),
    "text-named-png": Case(lambda: b"this is not an image\n", ".png", False),
    "bomb-50000x50000": Case(lambda: _png_header_only(50_000, 50_000), ".png", False),
    "over-limit-8000x6000": Case(lambda: _png_header_only(8000, 6000), ".png", False),
    "16-bit-png": Case(_sixteen_bit, ".png", True),
    "cmyk-jpeg": Case(lambda: _encode(RGB.convert("CMYK"), "JPEG"), ".jpg", True),
    "rgba-png": Case(lambda: _encode(RGB.convert("RGBA"), "PNG"), ".png", True),
    "palette-png": Case(lambda: _encode(RGB.convert("P"), "PNG"), ".png", True),
    "grey-png": Case(lambda: _encode(RGB.convert("L"), "PNG"), ".png", True),
    "1x1-png": Case(lambda: _encode(Image.new("RGB", (1, 1), (200, 10, 30)), "PNG"), ".png", True, (1, 1)),
}
BROKEN = [name for name, case in CORPUS.items() if not case.valid]
VALID = [name for name, case in CORPUS.items() if case.valid]


def write(path: Path, data: bytes | np.ndarray) -> Path:
    """Writes corpus bytes, or a uint8 array as PNG; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else _encode(Image.fromarray(data), "PNG"))
    return path


def corpus_file(folder: Path, name: str, stem: str | None = None, suffix: str | None = None) -> Path:
    case = CORPUS[name]
    return write(folder / f"{stem or name}{suffix or case.suffix}", case.make())


def box_mask(width: int = W, height: int = H, level: int = 255) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[height // 4 : 3 * height // 4 + 1, width // 4 : 3 * width // 4 + 1] = level
    return mask


# -- checkpoints ----------------------------------------------------------------------------------------
class RunsCode:
    """Pickles as a call to os.system: loading it with plain pickle would create `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _small_network(mask_mode: str = "alpha") -> InpaintingNetwork:
    torch.manual_seed(0)
    return InpaintingNetwork("thesis", mask_mode, n_blocks=2)


def _training_checkpoint(network: InpaintingNetwork, mask_mode: str) -> dict:
    """What `latentpaint train inpainting` writes, reduced to what loading reads."""
    model = {"arch": "thesis", "mask_mode": mask_mode, "delta": False, "overrides": {"n_blocks": 2}}
    return {
        "hyper_parameters": {"config": {"stage": "inpainting", "model": model}},
        "state_dict": {f"network.{k}": v for k, v in network.state_dict().items()},
    }


def _lama_folder(folder: Path, checkpoint: dict) -> Path:
    generator = {"kind": "ffc_resnet", "input_nc": 4, "output_nc": 3, "ngf": 8, "n_blocks": 2}
    write(folder / "config.yaml", json.dumps({"generator": generator}).encode())  # JSON is YAML
    (folder / "models").mkdir(parents=True)
    torch.save(checkpoint, folder / "models" / "best.ckpt")
    return folder


def make_checkpoint(kind: str, folder: Path, marker: Path) -> Path:
    """A bad model of `kind` under `folder`; the path to pass as --model."""
    folder.mkdir(parents=True)
    network = _small_network()
    if kind == "release-of-another-arch":  # alpha weights, config.json claims mask control
        save_release(network, folder)
        config = json.loads((folder / CONFIG_NAME).read_text())
        (folder / CONFIG_NAME).write_text(json.dumps({**config, "mask_mode": "control"}))
        return folder
    if kind == "training-ckpt-of-another-arch":
        torch.save(_training_checkpoint(network, "control"), folder / "other.ckpt")
        return folder / "other.ckpt"
    if kind == "lightning-ckpt-of-another-project":
        # save_hyperparameters(config=...) in someone else's LightningModule
        foreign = {"state_dict": {"layer.weight": torch.ones(2)}, "hyper_parameters": {"config": {"lr": 0.1}}}
        torch.save(foreign, folder / "x.ckpt")
        return folder / "x.ckpt"
    if kind == "truncated-ckpt":
        torch.save(_training_checkpoint(network, "alpha"), folder / "model.ckpt")
        data = (folder / "model.ckpt").read_bytes()
        return write(folder / "model.ckpt", _half(data))
    if kind == "truncated-legacy-ckpt":  # torch's pre-1.6 format: a bare pickle stream
        torch.save(
            _training_checkpoint(network, "alpha"), folder / "old.ckpt", _use_new_zipfile_serialization=False
        )
        return write(folder / "old.ckpt", (folder / "old.ckpt").read_bytes()[:200])
    if kind == "zero-byte-ckpt":
        return write(folder / "empty.ckpt", b"")
    if kind == "text-named-ckpt":
        return write(folder / "notes.ckpt", b"hello, this is not a checkpoint\n")
    if kind == "autoencoder-stage-ckpt":  # stage 1 given where stage 2 is needed
        torch.save(
            {"hyper_parameters": {"config": {"stage": "autoencoder"}}, "state_dict": {}}, folder / "ae.ckpt"
        )
        return folder / "ae.ckpt"
    if kind == "lama-folder-truncated-ckpt":
        state = {f"generator.{k}": v for k, v in network.generator.state_dict().items()}
        lama = _lama_folder(folder / "big-lama", {"state_dict": state})
        checkpoint = lama / "models" / "best.ckpt"
        write(checkpoint, _half(checkpoint.read_bytes()))
        return lama
    if kind == "truncated-safetensors":
        save_release(network, folder)
        write(folder / WEIGHTS_NAME, _half((folder / WEIGHTS_NAME).read_bytes()))
        return folder
    if kind == "truncated-config-json":
        save_release(network, folder)
        write(folder / CONFIG_NAME, _half((folder / CONFIG_NAME).read_bytes()))
        return folder
    if kind == "ckpt-running-code":
        checkpoint = _training_checkpoint(network, "alpha")
        checkpoint["hyper_parameters"]["payload"] = RunsCode(marker)
        torch.save(checkpoint, folder / "evil.ckpt")
        return folder / "evil.ckpt"
    if kind == "lama-folder-running-code":
        state = {f"generator.{k}": v for k, v in network.generator.state_dict().items()}
        return _lama_folder(folder / "big-lama", {"state_dict": state, "callbacks": RunsCode(marker)})
    raise AssertionError(kind)


CHECKPOINTS = [
    "release-of-another-arch",
    "training-ckpt-of-another-arch",
    "lightning-ckpt-of-another-project",
    "autoencoder-stage-ckpt",
    "truncated-ckpt",
    "truncated-legacy-ckpt",
    "zero-byte-ckpt",
    "text-named-ckpt",
    "lama-folder-truncated-ckpt",
    "truncated-safetensors",
    "truncated-config-json",
    "ckpt-running-code",
    "lama-folder-running-code",
]


# -- running the CLI ------------------------------------------------------------------------------------
@dataclass
class Result:
    code: int
    out: str
    err: list[str]  # stderr lines
    warnings: list[str]  # warnings a user would see on stderr (the default filters show them)


def run(capsys, *argv) -> Result:
    """`latentpaint ARGV` in this process; warnings are recorded, not printed, so they are counted too."""
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    hidden = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)
    shown = [str(w.message) for w in caught if not issubclass(w.category, hidden)]
    return Result(code, out, err.splitlines(), shown)


def assert_one_line(result: Result, code: int, path: Path) -> None:
    """Exit `code`, exactly one stderr line naming `path`, no traceback, no warning printed beside it."""
    assert result.code == code, (result.code, result.err)
    assert len(result.err) == 1, result.err
    assert str(path) in result.err[0] or str(path.resolve()) in result.err[0], result.err
    assert "Traceback" not in result.err[0]
    assert not result.warnings, result.warnings


def assert_no_partial_output(folder: Path) -> None:
    """No temp file left behind, and every PNG decodes completely."""
    if not folder.exists():
        return
    assert not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]
    for png in folder.rglob("*.png"):
        with Image.open(png) as image:
            image.load()


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return save_release(_small_network(), tmp_path_factory.mktemp("model"))


# -- predict --------------------------------------------------------------------------------------------
def predict(capsys, model: Path, image: Path, mask: Path, out: Path, *extra) -> Result:
    return run(capsys, "predict", "--model", model, "--input", image, "--mask", mask, "--output", out, *extra)


@pytest.mark.parametrize("name", CORPUS)
def test_predict_corpus_as_image(name, model, tmp_path, capsys):
    case = CORPUS[name]
    image = corpus_file(tmp_path, name)
    mask = write(tmp_path / "mask.png", box_mask(*case.size))
    out = tmp_path / "out"
    result = predict(capsys, model, image, mask, out)
    if case.valid:
        assert result.code == 0, result.err
        assert Image.open(out / f"{name}.png").size == case.size
    else:  # reported, skipped, exit 1
        assert_one_line(result, 1, image)
        assert not list(out.rglob("*.png"))
    assert_no_partial_output(out)


@pytest.mark.parametrize("name", CORPUS)
def test_predict_corpus_as_mask(name, model, tmp_path, capsys):
    case = CORPUS[name]
    image = write(tmp_path / "image.png", _noise(case.size[1], case.size[0], seed=1))
    mask = corpus_file(tmp_path, name)
    out = tmp_path / "out"
    result = predict(capsys, model, image, mask, out)
    if case.valid:
        assert result.code == 0, result.err
        keep = load_mask(mask) == 0
        assert np.array_equal(read_rgb(out / "image.png")[keep], read_rgb(image)[keep])
    else:
        assert_one_line(result, 1, mask)
        assert not list(out.rglob("*.png"))
    assert_no_partial_output(out)


def test_predict_folder_skips_broken_files_and_writes_the_rest(model, tmp_path, capsys):
    data = tmp_path / "data"
    for name in CORPUS:
        corpus_file(data, name)
    mask = write(tmp_path / "mask.png", box_mask())
    out = tmp_path / "out"
    result = predict(capsys, model, data, mask, out, "--resize-mask")
    assert result.code == 1
    assert len(result.err) == len(BROKEN) and "Traceback" not in "\n".join(result.err)
    for name in BROKEN:  # each broken file on its own line
        assert sum(str(data / f"{name}{CORPUS[name].suffix}") in line for line in result.err) == 1, name
    assert sorted(p.stem for p in out.glob("*.png")) == sorted(VALID)
    for name in VALID:
        assert Image.open(out / f"{name}.png").size == CORPUS[name].size
    assert f"wrote {len(VALID)} of {len(CORPUS)}" in result.out
    assert_no_partial_output(out)


def test_predict_mask_of_another_size(model, tmp_path, capsys):
    image = write(tmp_path / "image.png", _noise())
    mask = write(tmp_path / "mask.png", box_mask(W + 3, H))
    result = predict(capsys, model, image, mask, tmp_path / "out")
    assert_one_line(result, 1, mask)
    assert "--resize-mask" in result.err[0]
    assert predict(capsys, model, image, mask, tmp_path / "resized", "--resize-mask").code == 0


def test_predict_grey_levels_mean_fill(model, tmp_path, capsys):
    image = write(tmp_path / "image.png", _noise())
    levels = box_mask()
    levels[levels > 0] = np.resize(np.arange(1, 256, 17, dtype=np.uint8), int((levels > 0).sum()))
    grey = write(tmp_path / "grey.png", levels)
    binary = write(tmp_path / "binary.png", np.where(levels > 0, 255, 0).astype(np.uint8))
    assert predict(capsys, model, image, grey, tmp_path / "a").code == 0
    assert predict(capsys, model, image, binary, tmp_path / "b").code == 0
    assert np.array_equal(read_rgb(tmp_path / "a" / "image.png"), read_rgb(tmp_path / "b" / "image.png"))


def test_predict_all_zero_mask_returns_the_input_exactly(model, tmp_path, capsys):
    image = write(tmp_path / "image.png", _noise())
    mask = write(tmp_path / "mask.png", np.zeros((H, W), np.uint8))
    assert predict(capsys, model, image, mask, tmp_path / "out").code == 0
    assert np.array_equal(read_rgb(tmp_path / "out" / "image.png"), _noise())


def test_predict_all_one_mask(model, tmp_path, capsys):
    image = write(tmp_path / "image.png", _noise())
    mask = write(tmp_path / "mask.png", np.full((H, W), 255, np.uint8))
    assert predict(capsys, model, image, mask, tmp_path / "out").code == 0
    assert read_rgb(tmp_path / "out" / "image.png").shape == (H, W, 3)


def test_predict_empty_folder_and_folder_without_pairs(model, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run(capsys, "predict", "--model", model, "--input", empty, "--output", tmp_path / "o1")
    assert_one_line(result, 2, empty)
    unpaired = tmp_path / "unpaired"
    write(unpaired / "a.png", _noise())
    write(unpaired / "b.png", _noise())
    result = run(capsys, "predict", "--model", model, "--input", unpaired, "--output", tmp_path / "o2")
    assert_one_line(result, 2, unpaired)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


@pytest.mark.parametrize("kind", CHECKPOINTS)
def test_predict_bad_checkpoint(kind, tmp_path, capsys):
    marker = tmp_path / "MARKER"
    checkpoint = make_checkpoint(kind, tmp_path / "model", marker)
    image = write(tmp_path / "image.png", _noise())
    mask = write(tmp_path / "mask.png", box_mask())
    result = predict(capsys, checkpoint, image, mask, tmp_path / "out")
    assert_one_line(result, 2, checkpoint)
    assert not (tmp_path / "out").exists()
    assert not marker.exists()


def test_the_code_running_payload_is_live(tmp_path):
    """The checks above mean something: an unrestricted torch.load of that file does run the command."""
    marker = tmp_path / "MARKER"
    checkpoint = make_checkpoint("ckpt-running-code", tmp_path / "model", marker)
    torch.load(checkpoint, weights_only=False)  # what latentpaint never does
    assert marker.exists()


TRAIN_INPAINTING = ["train", "inpainting", "--config", "latent-control", "--set", "trainer.accelerator=cpu"]


@pytest.mark.parametrize(
    "kind",
    ["ckpt-running-code", "truncated-ckpt", "text-named-ckpt", "lightning-ckpt-of-another-project"],
)
@pytest.mark.parametrize("flag", ["--resume", "--autoencoder"])
def test_train_refuses_bad_checkpoints(kind, flag, tmp_path, capsys):
    marker = tmp_path / "MARKER"
    checkpoint = make_checkpoint(kind, tmp_path / "model", marker)
    out = tmp_path / "run"
    result = run(capsys, *TRAIN_INPAINTING, flag, checkpoint, "--out", out)
    assert_one_line(result, 2, checkpoint)
    assert not marker.exists()
    assert not (out / "checkpoints").exists()
    assert_no_partial_output(out)


def test_train_refuses_autoencoder_of_another_arch(tmp_path, capsys):
    from latentpaint.models.registry import create_generator

    generator = create_generator("thesis", ngf=16, input_nc=3)  # the preset trains ngf 8
    checkpoint = tmp_path / "autoencoder.ckpt"
    torch.save(
        {
            "hyper_parameters": {"config": {"stage": "autoencoder"}},
            "state_dict": {f"generator.{k}": v for k, v in generator.state_dict().items()},
        },
        checkpoint,
    )
    out = tmp_path / "run"
    assert_one_line(run(capsys, *TRAIN_INPAINTING, "--autoencoder", checkpoint, "--out", out), 2, checkpoint)


# -- evaluate -------------------------------------------------------------------------------------------
def evaluate(capsys, data: Path, predictions: Path) -> Result:
    return run(capsys, "evaluate", "--data", data, "--predictions", predictions, "--metrics", "ssim,psnr")


@pytest.mark.parametrize("role", ["image", "mask", "prediction"])
@pytest.mark.parametrize("name", CORPUS)
def test_evaluate_corpus(name, role, tmp_path, capsys):
    case = CORPUS[name]
    data, predictions = tmp_path / "data", tmp_path / "predictions"
    w, h = case.size
    # LaMa's layout: masks and predictions are .png whatever their content
    files = {
        "image": write(data / "a.png", _noise(h, w)),
        "mask": write(data / "a_mask000.png", box_mask(w, h)),
        "prediction": write(predictions / "a_mask000.png", _noise(h, w, seed=2)),
    }
    files[role].unlink()
    bad = corpus_file(files[role].parent, name, files[role].stem, ".png" if role != "image" else None)
    result = evaluate(capsys, data, predictions)
    if case.valid:
        assert result.code == 0, result.err
        assert "pairs: 1" in result.out
    else:
        assert_one_line(result, 2, bad)


@pytest.mark.parametrize("mask", ["other-size", "grey-levels", "all-zero", "all-one"])
def test_evaluate_odd_masks(mask, tmp_path, capsys):
    data, predictions = tmp_path / "data", tmp_path / "predictions"
    write(data / "a.png", _noise())
    write(predictions / "a_mask000.png", _noise(seed=2))
    arrays = {
        "other-size": box_mask(W, H + 2),
        "grey-levels": box_mask(level=7),
        "all-zero": np.zeros((H, W), np.uint8),
        "all-one": np.full((H, W), 255, np.uint8),
    }
    path = write(data / "a_mask000.png", arrays[mask])
    result = evaluate(capsys, data, predictions)
    if mask == "other-size":
        assert_one_line(result, 2, path)
    else:
        assert result.code == 0, result.err


def test_evaluate_empty_folder_and_folder_without_pairs(tmp_path, capsys):
    empty, unpaired, predictions = tmp_path / "empty", tmp_path / "unpaired", tmp_path / "predictions"
    empty.mkdir()
    predictions.mkdir()
    assert_one_line(evaluate(capsys, empty, predictions), 2, empty)
    write(unpaired / "a.png", _noise())
    assert_one_line(evaluate(capsys, unpaired, predictions), 2, unpaired)


# -- masks ----------------------------------------------------------------------------------------------
def masks(capsys, images: Path, out: Path) -> Result:
    return run(capsys, "masks", "--preset", "thin_256", "--size", "32", "--images", images, "--out", out)


@pytest.mark.parametrize("name", CORPUS)
def test_masks_corpus(name, tmp_path, capsys):
    images, out = tmp_path / "images", tmp_path / "out"
    path = corpus_file(images, name)
    result = masks(capsys, images, out)
    if CORPUS[name].valid:
        assert result.code == 0, result.err
        assert Image.open(out / f"{name}.png").size == (32, 32)
    else:
        assert_one_line(result, 2, path)
    assert_no_partial_output(out)


def test_masks_empty_folder(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    write(empty / "notes.txt", b"no images here\n")
    assert_one_line(masks(capsys, empty, tmp_path / "out"), 2, empty)
    assert not (tmp_path / "out").exists()


# -- train ----------------------------------------------------------------------------------------------
def train(capsys, data: Path, out: Path, tiny) -> Result:
    return run(
        capsys, "train", "autoencoder", "--config", "autoencoder", "--data", data, "--out", out, "--set",
        *tiny.sets("trainer.max_steps=1", size=32),
    )  # fmt: skip


def test_train_skips_broken_images_with_a_count(tmp_path, capsys, tiny):
    data, out = tmp_path / "data", tmp_path / "run"
    for name in CORPUS:
        corpus_file(data, name)
    result = train(capsys, data, out, tiny)
    assert result.code == 0, result.err
    skipped = [w for w in result.warnings if w.startswith("skipped")]
    assert len(skipped) == 1 and f"skipped {len(BROKEN)} unreadable of {len(CORPUS)} images" in skipped[0]
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert_no_partial_output(out)


def test_train_with_only_broken_images_fails(tmp_path, capsys, tiny):
    data, out = tmp_path / "data", tmp_path / "run"
    for name in BROKEN:
        corpus_file(data, name)
    result = train(capsys, data, out, tiny)
    assert_one_line(result, 2, data)
    assert "none of the" in result.err[0]
    assert not (out / "checkpoints").exists()
    assert_no_partial_output(out)


@pytest.mark.parametrize("folder", ["empty", "no-images"])
def test_train_empty_folder(folder, tmp_path, capsys, tiny):
    data = tmp_path / folder
    data.mkdir()
    if folder == "no-images":
        write(data / "readme.txt", b"text\n")
    assert_one_line(train(capsys, data, tmp_path / "run", tiny), 2, data)


# -- REST API -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client():
    from fastapi.testclient import TestClient

    from latentpaint.inference.inpainter import Inpainter
    from latentpaint.server.app import create_app

    torch.manual_seed(0)
    app = create_app(Inpainter(InpaintingNetwork("thesis", "control")))
    with TestClient(
        app, base_url="http://127.0.0.1:8080"
    ) as client:  # a loopback Host, as the server requires
        yield client


def post(client, image: bytes, mask: bytes):
    files = {
        "image": ("image", image, "application/octet-stream"),
        "mask": ("mask", mask, "application/octet-stream"),
    }
    return client.post("/api/inpaint", files=files)


def _png(array: np.ndarray) -> bytes:
    return _encode(Image.fromarray(array), "PNG")


@pytest.mark.parametrize("role", ["image", "mask"])
@pytest.mark.parametrize("name", CORPUS)
def test_api_corpus(name, role, client):
    case = CORPUS[name]
    w, h = case.size
    other = _png(box_mask(w, h)) if role == "image" else _png(_noise(h, w))
    response = post(client, case.make(), other) if role == "image" else post(client, other, case.make())
    if case.valid:
        assert response.status_code == 200, response.text
        assert Image.open(io.BytesIO(response.content)).size == case.size
    else:
        assert 400 <= response.status_code < 500, (response.status_code, response.text)
        assert response.json()["detail"]


@pytest.mark.parametrize("mask", ["other-size", "grey-levels", "all-zero", "all-one"])
def test_api_odd_masks(mask, client):
    arrays = {
        "other-size": box_mask(W + 1, H),
        "grey-levels": box_mask(level=1),
        "all-zero": np.zeros((H, W), np.uint8),
        "all-one": np.full((H, W), 255, np.uint8),
    }
    response = post(client, _png(_noise()), _png(arrays[mask]))
    if mask == "other-size":
        assert response.status_code == 422, response.text
        return
    assert response.status_code == 200, response.text
    result = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
    keep = arrays[mask] == 0
    assert np.array_equal(result[keep], _noise()[keep])


# -- classical methods: predict --method, /api/inpaint?method=, experiment --classical -----------------------
TEXTURE = ("opencv-shiftmap", "opencv-fsr", "patchmatch")


def classical_predict(capsys, method: str, image: Path, mask: Path, out: Path, *extra) -> Result:
    return run(
        capsys, "predict", "--method", method, "--input", image, "--mask", mask, "--output", out, *extra
    )


def test_unknown_method_is_one_line_listing_the_choices(tmp_path, capsys):
    from latentpaint.inference.classical import CLASSICAL_METHODS

    image, mask = write(tmp_path / "a.png", _noise()), write(tmp_path / "a_mask.png", box_mask())
    result = classical_predict(capsys, "criminisi", image, mask, tmp_path / "out")
    assert result.code == 2 and len(result.err) == 1, result.err
    assert "--method" in result.err[0] and "'criminisi'" in result.err[0]
    assert all(f"'{name}'" in result.err[0] for name in ["model", *CLASSICAL_METHODS]), result.err
    assert not (tmp_path / "out").exists() and not result.warnings


def test_experiment_unknown_classical_is_one_line_listing_the_choices(tmp_path, capsys):
    from latentpaint.inference.classical import CLASSICAL_METHODS

    out = tmp_path / "exp"
    result = run(capsys, "experiment", "table-5-1", "--steps", "1", "--classical", "opencv-fsr,criminisi",
                 "--out", out)  # fmt: skip
    assert result.code == 2 and len(result.err) == 1, result.err
    assert "--classical" in result.err[0] and "'criminisi'" in result.err[0]
    assert all(name in result.err[0] for name in CLASSICAL_METHODS), result.err
    assert not out.exists() and not result.warnings


@pytest.mark.parametrize("method", TEXTURE)
@pytest.mark.parametrize("name", CORPUS)
def test_predict_corpus_with_texture_fills(name, method, tmp_path, capsys):
    # a 1x1 image under the box mask has no known pixel to copy texture from: one line for that file too
    case = CORPUS[name]
    image = corpus_file(tmp_path, name)
    mask = write(tmp_path / "mask.png", box_mask(*case.size))
    out = tmp_path / "out"
    result = classical_predict(capsys, method, image, mask, out)
    if case.valid and case.size != (1, 1):
        assert result.code == 0, result.err
        with Image.open(out / f"{name}.png") as written:
            assert written.size == case.size
    else:
        assert_one_line(result, 1, image)
        assert repr(str(image)) in result.err[0]  # quoted, as every name
        if case.valid:
            assert "covers the whole image" in result.err[0]
        assert not list(out.rglob("*.png"))
    assert_no_partial_output(out)


@pytest.mark.parametrize("method", TEXTURE)
def test_texture_fill_failures_quote_the_names(method, tmp_path, capsys):
    # a name with a newline: the failure line stays one line and shows the names as given
    data = tmp_path / "a\nb"
    image = write(data / "x\ny.png", _noise())
    write(data / "x\ny_mask000.png", np.full((H, W), 255, np.uint8))  # nothing known: that file fails
    write(data / "ok.png", _noise(seed=1))
    write(data / "ok_mask000.png", box_mask())
    out = tmp_path / "out"
    result = run(capsys, "predict", "--method", method, "--input", data, "--output", out)
    assert result.code == 1 and len(result.err) == 1 and not result.warnings, result.err
    assert repr(str(image)) in result.err[0] and "covers the whole image" in result.err[0], result.err
    assert sorted(p.name for p in out.iterdir()) == ["ok_mask000.png"]
    assert_no_partial_output(out)


@pytest.mark.parametrize("method", TEXTURE)
@pytest.mark.parametrize("role", ["image", "mask"])
@pytest.mark.parametrize("name", CORPUS)
def test_api_corpus_with_texture_fills(name, role, method, client):
    case = CORPUS[name]
    w, h = case.size
    other = _png(box_mask(w, h)) if role == "image" else _png(_noise(h, w))
    files = {
        "image": ("image", case.make() if role == "image" else other, "application/octet-stream"),
        "mask": ("mask", other if role == "image" else case.make(), "application/octet-stream"),
    }
    response = client.post(f"/api/inpaint?method={method}", files=files)
    if case.valid and case.size != (1, 1):
        assert response.status_code == 200, response.text
        assert Image.open(io.BytesIO(response.content)).size == case.size
    else:  # a broken upload, or a 1x1 hole with nothing known around it
        assert 400 <= response.status_code < 500, (response.status_code, response.text)
        detail = response.json()["detail"]
        assert detail and "\n" not in detail


@pytest.mark.timeout(60)  # a pipe opened by mistake would block
@pytest.mark.parametrize("source", ["file", "folder"])
def test_texture_fills_keep_the_output_and_pairing_rules(source, tmp_path, capsys):
    # what issue 20 made predict refuse before anything is written holds for --method too: an output
    # replacing a mask, an output that is a pipe, two masks for one image; and the writes are atomic
    import os

    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    image = write(images / "x.png", _noise())
    mask = write(masks / "x.png", box_mask())
    given = image if source == "file" else images
    before = mask.read_bytes()
    result = classical_predict(capsys, "opencv-fsr", given, mask if source == "file" else masks, masks,
                               "--overwrite")  # fmt: skip
    assert_one_line(result, 2, mask)  # its result masks/x.png would be the mask it reads
    assert mask.read_bytes() == before
    out.mkdir()
    os.mkfifo(out / "x.png")
    result = classical_predict(capsys, "opencv-fsr", given, mask, out, "--overwrite")
    assert_one_line(result, 2, out / "x.png")
    assert "--output" in result.err[0] and "named pipe" in result.err[0]
    assert [p.name for p in out.iterdir()] == ["x.png"] and not (out / "x.png").is_file()
    (out / "x.png").unlink()
    Image.fromarray(box_mask()).save(masks / "x.jpg")  # a second mask for x.*
    result = classical_predict(capsys, "opencv-fsr", given, masks, out)
    assert_one_line(result, 2, masks / "x.jpg")
    assert "--mask" in result.err[0] and not list(out.iterdir())
    (masks / "x.jpg").unlink()
    assert classical_predict(capsys, "opencv-fsr", given, masks, out).code == 0
    assert [p.name for p in out.iterdir()] == ["x.png"]  # no temp file beside it
    assert_no_partial_output(out)
