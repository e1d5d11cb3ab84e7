"""HD strategies (original / resize / crop) and LaMa's multi-scale refinement, with a tiny network."""

import numpy as np
import pytest
import torch

from latentpaint.errors import LatentpaintError
from latentpaint.inference.hd import crop_window, inpaint_hd, mask_boxes
from latentpaint.inference.inpainter import Inpainter
from latentpaint.inference.refine import pyramid_scales, refine_array, refine_inpaint
from latentpaint.models.network import InpaintingNetwork

H, W = 1500, 2000


@pytest.fixture(scope="module")
def inpainter() -> Inpainter:
    torch.manual_seed(0)
    return Inpainter(InpaintingNetwork("thesis", "alpha", n_blocks=2))


class Recorder:
    """Wraps a predictor and records the (H, W) of every call."""

    def __init__(self, predict):
        self.predict, self.sizes = predict, []

    def __call__(self, image, mask):
        assert image.shape[:2] == mask.shape
        self.sizes.append(image.shape[:2])
        return self.predict(image, mask)


@pytest.fixture(scope="module")
def big():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    mask = np.zeros((H, W), np.float32)
    mask[700:800, 900:1100] = 1  # a region in the middle
    mask[20:60, 1950:1990] = 1  # one near the top-right corner
    mask[1200, 100:400] = 1  # a one-pixel line
    return image, mask


def _check_known_pixels(out, image, mask):
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[mask == 0], image[mask == 0])


def test_crop_runs_one_crop_per_region(inpainter, big):
    image, mask = big
    recorder = Recorder(inpainter.predict_array)
    out = inpaint_hd(recorder, image, mask, "crop")
    _check_known_pixels(out, image, mask)
    assert len(recorder.sizes) == 3
    for (h, w), (left, top, right, bottom, _) in zip(recorder.sizes, mask_boxes(mask)):
        assert (
            bottom - top <= h <= bottom - top + 2 * 128 + 1
            and right - left <= w <= right - left + 2 * 128 + 1
        )
        assert h * w < H * W / 10
    assert (out[mask > 0] != image[mask > 0]).any(axis=-1).mean() > 0.9


def test_crop_below_trigger_is_whole_image(inpainter, big):
    image, mask = big
    recorder = Recorder(inpainter.predict_array)
    part = (slice(650, 1250), slice(0, 790))  # holds the 1-px line
    out = inpaint_hd(recorder, image[part], mask[part], "crop")
    assert recorder.sizes == [(600, 790)]
    _check_known_pixels(out, image[part], mask[part])


def test_resize_runs_once_at_the_limit_and_fills_thin_strokes(inpainter, big):
    image, mask = big
    recorder = Recorder(inpainter.predict_array)
    out = inpaint_hd(recorder, image, mask, "resize")
    assert recorder.sizes == [(960, 1280)]
    _check_known_pixels(out, image, mask)
    line = (slice(1200, 1201), slice(100, 400))
    assert (out[line] != image[line]).any(axis=-1).mean() > 0.9  # the 1-px line was inpainted too


def test_original_is_one_full_size_call(big):
    image, mask = big
    recorder = Recorder(lambda img, m: np.full_like(img, 7))
    out = inpaint_hd(recorder, image, mask, "original")
    assert recorder.sizes == [(H, W)]
    assert (out[mask > 0] == 7).all()
    _check_known_pixels(out, image, mask)


def test_empty_mask_makes_no_call_and_bad_arguments_are_errors(big):
    image, _ = big
    recorder = Recorder(lambda img, m: img)
    assert np.array_equal(inpaint_hd(recorder, image, np.zeros((H, W), np.float32)), image)
    assert recorder.sizes == []
    with pytest.raises(LatentpaintError, match="unknown HD strategy"):
        inpaint_hd(recorder, image, np.ones((H, W)), "tiles")
    with pytest.raises(LatentpaintError, match="must be the same size"):
        inpaint_hd(recorder, image, np.ones((H, W + 1)))


def test_crop_window_shifts_inside_the_image():
    assert crop_window((10, 10, 30, 30), 128, 1000, 1000) == (0, 0, 276, 276)  # full context at the corner
    assert crop_window((400, 400, 500, 450), 128, 1000, 1000) == (272, 272, 628, 578)
    assert crop_window((0, 0, 90, 90), 128, 100, 100) == (0, 0, 100, 100)  # clamped to the image


# -- refinement --------------------------------------------------------------------------------------
def test_pyramid_scales_follow_lama():
    assert pyramid_scales(512, 512, 512, 3) == 1
    assert pyramid_scales(1024, 2048, 512, 3) == 2
    assert pyramid_scales(4096, 4096, 512, 3) == 3


def test_refinement_lowers_its_loss_and_keeps_known_pixels(inpainter):
    network = inpainter.network
    torch.manual_seed(1)
    image = torch.rand(1, 3, 96, 128)
    mask = torch.zeros(1, 1, 96, 128)
    mask[..., 30:70, 40:100] = 1
    out, losses = refine_inpaint(network, image, mask, n_iters=6, lr=0.05, min_side=32, return_losses=True)
    assert len(losses) == 2  # three scales, the coarsest one is plain inference
    assert all(scale[-1] < scale[0] for scale in losses)
    assert out.shape == image.shape
    assert torch.equal(out[mask.expand_as(out) == 0], image[mask.expand_as(image) == 0])
    plain = torch.from_numpy(
        inpainter.predict_array((image[0].permute(1, 2, 0) * 255).round().byte().numpy(), mask[0, 0].numpy())
    )
    refined = (out[0].permute(1, 2, 0) * 255).round().byte()
    assert not torch.equal(refined, plain)
    assert not network.training and all(p.requires_grad for p in network.parameters())


def test_refinement_over_the_pixel_budget_keeps_the_size(inpainter):
    image = np.random.default_rng(2).integers(0, 256, (90, 70, 3), dtype=np.uint8)
    mask = np.zeros((90, 70), np.float32)
    mask[20:50, 10:40] = 1
    out = refine_array(inpainter, image, mask, n_iters=2, min_side=16, px_budget=40 * 40)
    _check_known_pixels(out, image, mask)
