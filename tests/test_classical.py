"""The classical fills' registry (inference/classical.py): every method on tiny inputs, known pixels exact,
determinism, missing backends, and the installed OpenCV that has them."""

from __future__ import annotations

import importlib.metadata
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

import latentpaint
from latentpaint.errors import LatentpaintError
from latentpaint.inference import classical
from latentpaint.inference.classical import (
    CLASSICAL_METHODS,
    MissingBackend,
    classical_fill,
    classical_inpaint,
    fill_function,
    missing_backend,
)

TEXTURE = ("opencv-shiftmap", "opencv-fsr", "patchmatch")


def stripes(h: int = 48, w: int = 64) -> np.ndarray:
    """A texture to continue: diagonal stripes in two colours, plus a little noise."""
    y, x = np.mgrid[0:h, 0:w]
    band = ((x + y) // 4) % 2 == 0
    image = np.where(band[..., None], (200, 60, 40), (30, 90, 180)).astype(np.int16)
    image += np.random.default_rng(0).integers(-10, 11, image.shape, dtype=np.int16)
    return image.clip(0, 255).astype(np.uint8)


def hole(h: int = 48, w: int = 64) -> np.ndarray:
    mask = np.zeros((h, w), np.float32)
    mask[14:30, 20:44] = 1
    return mask


def test_the_registry_lists_every_method_once_everywhere():
    assert list(CLASSICAL_METHODS) == ["opencv-telea", "opencv-ns", *TEXTURE]
    assert latentpaint.CLASSICAL_METHODS is CLASSICAL_METHODS
    assert latentpaint.classical_inpaint is classical_inpaint
    assert {m.package for m in CLASSICAL_METHODS.values()} == {
        None,
        "opencv-contrib-python-headless",
        "patchmatch-cython",
    }


@pytest.mark.parametrize("method", list(CLASSICAL_METHODS))
def test_each_method_fills_only_the_hole_and_repeats_itself(method):
    image, mask = stripes(), hole()
    out = classical_fill(image, mask, method)
    assert out.dtype == np.uint8 and out.shape == image.shape
    known = mask == 0
    assert np.array_equal(out[known], image[known])
    assert (out[~known] != image[~known]).any(axis=1).mean() > 0.5
    assert np.array_equal(classical_fill(image, mask, method), out)  # deterministic (PatchMatch: seed 0)
    assert np.array_equal(fill_function(method)(image, mask), out)


def test_texture_fills_continue_the_stripes():
    """The hole's colours come from the two stripe colours, not the blur between them that diffusion makes.
    PatchMatch's seam blend (patchmatch-cython's default, kept) softens a hole this small, yet still less
    than Telea does."""
    image, mask = stripes(), hole()
    colours = np.array([(200, 60, 40), (30, 90, 180)])

    def distance(method: str) -> float:  # median distance of a filled pixel to the nearer stripe colour
        filled = classical_fill(image, mask, method)[mask > 0].astype(int)
        return float(np.median(np.abs(filled[:, None, :] - colours[None]).sum(-1).min(1)))

    assert distance("opencv-shiftmap") < 30 and distance("opencv-fsr") < 30
    assert distance("patchmatch") < distance("opencv-telea") - 20


def test_patchmatch_is_reproducible_for_a_seed():
    image, mask = stripes(), hole()
    a = classical_fill(image, mask, "patchmatch", seed=3)
    assert np.array_equal(classical_fill(image, mask, "patchmatch", seed=3), a)
    assert not np.array_equal(classical_fill(image, mask, "patchmatch", seed=4), a)


def test_python_api_takes_pil_and_arrays():
    image, mask = stripes(), hole()
    pil = classical_inpaint(
        Image.fromarray(image), Image.fromarray((mask * 255).astype(np.uint8)), "opencv-fsr"
    )
    assert isinstance(pil, Image.Image)
    array = latentpaint.classical_inpaint(image, mask, method="opencv-fsr")
    assert np.array_equal(np.asarray(pil), array)
    grey = classical_inpaint(image[..., 0], mask, "patchmatch")  # (H, W) images become RGB
    assert grey.shape == image.shape


def test_edge_cases_are_results_or_one_line_errors():
    image, mask = stripes(), hole()
    empty = np.zeros_like(mask)
    for method in CLASSICAL_METHODS:
        assert np.array_equal(classical_fill(image, empty, method), image)
    full = np.ones_like(mask)
    for method in TEXTURE:
        with pytest.raises(LatentpaintError, match="covers the whole image"):
            classical_fill(image, full, method)
    with pytest.raises(LatentpaintError, match="at least 5x5"):
        classical_fill(image[:4, :4], full[:4, :4] * (np.arange(4) == 1), "patchmatch")
    with pytest.raises(LatentpaintError, match="unknown classical method 'criminisi'"):
        classical_fill(image, mask, "criminisi")
    with pytest.raises(LatentpaintError, match="same size"):
        classical_fill(image, mask[:10], "opencv-shiftmap")
    with pytest.raises(LatentpaintError, match="uint8"):
        classical_fill(image.astype(np.float32), mask, "opencv-fsr")


def test_missing_backends_name_their_package(monkeypatch):
    image, mask = stripes(), hole()
    monkeypatch.delattr(cv2, "xphoto")
    monkeypatch.setitem(sys.modules, "patchmatch_cython", None)  # `import patchmatch_cython` fails
    version = importlib.metadata.version("opencv-python-headless")
    for method in ("opencv-shiftmap", "opencv-fsr"):
        with pytest.raises(MissingBackend) as caught:
            fill_function(method)
        message = str(caught.value)
        assert message.startswith(f"{method}: ") and "\n" not in message
        assert f"opencv-contrib-python-headless=={version}" in message
        with pytest.raises(MissingBackend):
            classical_fill(image, mask, method)
    assert "pip install patchmatch-cython" in missing_backend("patchmatch")
    assert missing_backend("opencv-telea") is None
    assert np.array_equal(classical_fill(image, mask, "opencv-telea"), classical.opencv_inpaint(image, mask))


def test_the_installed_opencv_has_xphoto_and_albumentations_still_imports():
    """make install puts opencv-contrib-python-headless over the opencv-python-headless that
    albumentations requires, at the same version (README, design notes): both wheels write cv2/."""
    assert hasattr(cv2, "xphoto") and hasattr(cv2.xphoto, "INPAINT_FSR_FAST")
    version = importlib.metadata.version
    assert version("opencv-contrib-python-headless") == version("opencv-python-headless")
    import albumentations

    assert albumentations.Compose([albumentations.HorizontalFlip(p=1)])(image=stripes())["image"].shape == (
        48,
        64,
        3,
    )


def test_demo_compares_with_every_classical_fill_it_can_run(monkeypatch, capsys):
    from latentpaint.demo import available_classical, verdicts

    assert available_classical() == list(CLASSICAL_METHODS)
    scores = {"this run": [(20.0, 0.80)], "opencv-telea": [(19.0, 0.81)], "opencv-fsr": [(21.0, 0.79)]}
    scores["patchmatch"] = [(18.0, 0.70)]
    (line,) = verdicts(scores, ["this run"])
    assert "opencv-telea (SSIM lower)" in line and "opencv-fsr (PSNR lower)" in line
    assert "patchmatch" not in line
    (line,) = verdicts({**scores, "this run": [(30.0, 0.9)]}, ["this run"])
    assert "better than every classical fill" in line
    monkeypatch.delattr(cv2, "xphoto")
    assert available_classical() == ["opencv-telea", "opencv-ns", "patchmatch"]
    notes = capsys.readouterr().out.splitlines()
    assert len(notes) == 2 and all("opencv-contrib-python-headless" in n for n in notes)
