"""The same image/mask bytes through `predict`, `evaluate`, `Inpainter` and the server: one pairing rule,
one image reader, one mask reader, one size rule, so the same pairs, the same error and the same output."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentpaint.cli import main
from latentpaint.errors import LatentpaintError
from latentpaint.inference.checkpoints import save_release
from latentpaint.inference.inpainter import Inpainter
from latentpaint.metrics.bins import area_bin
from latentpaint.models.network import InpaintingNetwork

H, W = 48, 64
BOX = (slice(10, 30), slice(20, 50))  # 19.5 % of the image: the 10-20% bin
SIZE_RULE = "but its image is 64x48; they must be the same size"


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def photo(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(40, 216, (H, W, 3), dtype=np.uint8)


def box_mask(dtype=np.uint8, level: int = 255, width: int = W) -> np.ndarray:
    mask = np.zeros((H, width), dtype)
    mask[BOX] = level
    return mask


@dataclass
class Case:
    files: dict[str, bytes]  # name -> bytes of a folder
    pairs: list[tuple[str, str]] = field(default_factory=list)  # the pairs every entry point must see
    error: str | None = None  # a sentence every entry point must report


CASES = {
    # 16-bit levels 1..255 have no high byte: any raw level above 0 fills, from a file or an upload alike
    "16-bit mask": Case(
        {"a.png": png(photo(0)), "a_mask000.png": png(box_mask(np.uint16, 200))},
        [("a.png", "a_mask000.png")],
    ),
    # `photo_masked` is an image that has a mask, not a mask of `photo`
    "name containing _mask": Case(
        {
            "a.png": png(photo(0)),
            "a_mask000.png": png(box_mask()),
            "photo_masked.png": png(photo(1)),
            "photo_masked_mask000.png": png(box_mask()),
        },
        [("a.png", "a_mask000.png"), ("photo_masked.png", "photo_masked_mask000.png")],
    ),
    "mask of another size": Case(
        {"a.png": png(photo(0)), "a_mask000.png": png(box_mask(width=W + 1))},
        [("a.png", "a_mask000.png")],
        error=SIZE_RULE,
    ),
}


@dataclass
class Outcome:
    pairs: list[str] | None = None  # mask names, where the entry point pairs a folder itself
    outputs: dict[str, np.ndarray] | None = None  # mask name -> inpainted image
    bins: dict[str, int] | None = None  # evaluate: pairs per mask-area bin (shows the mask it read)
    error: str | None = None


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    network = InpaintingNetwork("thesis", "control", n_blocks=2)
    return save_release(network, tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def inpainter(model_dir) -> Inpainter:
    return Inpainter.from_pretrained(model_dir)


def decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.array(image)


def reference(case: Case, inpainter: Inpainter) -> dict[str, np.ndarray]:
    """What each pair must become: the network on the decoded pixels, filling every raw mask level > 0."""
    return {
        mask: inpainter.predict_array(
            decoded(case.files[image]), (decoded(case.files[mask]) > 0).astype("f4")
        )
        for image, mask in case.pairs
    }


def run_predict(folder: Path, case: Case, inpainter, model_dir: Path, capsys) -> Outcome:
    out = folder.parent / "out"
    main(["predict", "--model", str(model_dir), "--input", str(folder), "--output", str(out)])
    failed = [line for line in capsys.readouterr().err.splitlines() if "failed:" in line]
    written = {p.name: np.asarray(Image.open(p).convert("RGB")) for p in out.glob("*.png")}
    return Outcome(sorted(written), written, error=" ".join(failed) or None)


def run_evaluate(folder: Path, case: Case, inpainter, model_dir: Path, capsys) -> Outcome:
    # the predictions are the expected outputs, named by the expected pairing: any other pairing fails
    predictions = folder.parent / "predictions"
    for mask, result in reference_or_empty(case, inpainter).items():
        predictions.mkdir(exist_ok=True)
        Image.fromarray(result).save(predictions / mask)
    report = folder.parent / "report.json"
    argv = ["evaluate", "--data", str(folder), "--predictions", str(predictions), "--metrics", "ssim,psnr"]
    if main([*argv, "--out", str(report)]) != 0:
        return Outcome(error=capsys.readouterr().err)
    counts = json.loads(report.read_text())["counts"]
    return Outcome(sorted(mask for _, mask in case.pairs), bins=counts["per_bin"])


def reference_or_empty(case: Case, inpainter: Inpainter) -> dict[str, np.ndarray]:
    # a pair that cannot be inpainted still gets a prediction file, so evaluate reaches its size check
    if case.error:
        return {mask: decoded(case.files[image]) for image, mask in case.pairs}
    return reference(case, inpainter)


def run_inpainter(folder: Path, case: Case, inpainter, model_dir: Path, capsys) -> Outcome:
    outputs = {}
    try:
        for image, mask in case.pairs:  # a pair at a time: the Python API pairs nothing itself
            outputs[mask] = inpainter(Image.open(folder / image), Image.open(folder / mask))
    except LatentpaintError as exc:
        return Outcome(error=str(exc))
    return Outcome(outputs={m: np.asarray(o) for m, o in outputs.items()})


def run_server(folder: Path, case: Case, inpainter, model_dir: Path, capsys) -> Outcome:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from latentpaint.server import create_app

    outputs = {}
    with TestClient(create_app(inpainter), base_url="http://127.0.0.1:8080") as client:
        for image, mask in case.pairs:
            files = {"image": ("i.png", case.files[image], "image/png"), "mask": ("m.png", case.files[mask])}
            response = client.post("/api/inpaint", files=files)
            if response.status_code != 200:
                return Outcome(error=response.json()["detail"])
            outputs[mask] = decoded(response.content)
    return Outcome(outputs=outputs)


ENTRY_POINTS = {
    "predict": run_predict,
    "evaluate": run_evaluate,
    "Inpainter": run_inpainter,
    "server": run_server,
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("name", CASES)
def test_the_same_bytes_give_the_same_pairing_error_and_output(
    name, entry, tmp_path, inpainter, model_dir, capsys
):
    case = CASES[name]
    folder = tmp_path / "data"
    folder.mkdir()
    for file, data in case.files.items():
        (folder / file).write_bytes(data)
    outcome = ENTRY_POINTS[entry](folder, case, inpainter, model_dir, capsys)

    if case.error:
        assert outcome.error is not None and case.error in outcome.error
        return
    assert outcome.error is None
    if outcome.pairs is not None:
        assert outcome.pairs == sorted(mask for _, mask in case.pairs)
    if outcome.outputs is not None:
        expected = reference(case, inpainter)
        assert sorted(outcome.outputs) == sorted(expected)
        for image, mask in case.pairs:
            assert (expected[mask][BOX] != decoded(case.files[image])[BOX]).any()  # the box was filled
            np.testing.assert_array_equal(outcome.outputs[mask], expected[mask])
    if outcome.bins is not None:
        assert outcome.bins == {area_bin(box_mask().astype(bool).mean()): len(case.pairs)}
