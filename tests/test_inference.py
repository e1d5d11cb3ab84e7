"""Inpainter: any size in, same size out, known pixels exact; checkpoints in and out."""

import numpy as np
import pytest
import torch
from PIL import Image

from latentpaint.errors import LatentpaintError
from latentpaint.inference.checkpoints import load_network, save_release
from latentpaint.inference.inpainter import Inpainter
from latentpaint.models.network import InpaintingNetwork


def _network(seed: int = 0, **kwargs) -> InpaintingNetwork:
    torch.manual_seed(seed)
    return InpaintingNetwork("thesis", kwargs.pop("mask_mode", "alpha"), n_blocks=2, **kwargs).eval()


@pytest.fixture(scope="module")
def inpainter() -> Inpainter:
    return Inpainter(_network())


def _image_and_mask(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.float32)
    mask[h // 4 : max(h // 4 + 1, 3 * h // 4), w // 3 : max(w // 3 + 1, 2 * w // 3)] = 1
    return image, mask


@pytest.mark.parametrize(
    "size",
    [
        (37, 51),
        (1, 1),
        (8, 8),
        (9, 16),
        (64, 31),
    ],
)
def test_odd_sizes_round_trip_and_known_pixels_are_exact(inpainter, size):
    image, mask = _image_and_mask(*size)
    out = inpainter(image, mask)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[mask == 0], image[mask == 0])


def test_masked_pixels_are_the_prediction(inpainter):
    image, mask = _image_and_mask(40, 48)
    out = inpainter(image, mask)
    assert not np.array_equal(out[mask > 0], image[mask > 0])


def test_empty_mask_returns_the_input(inpainter):
    image, _ = _image_and_mask(33, 20)
    out = inpainter(image, np.zeros((33, 20), np.float32))
    assert np.array_equal(out, image)


def test_pil_in_pil_out_and_grey_levels_count_as_mask(inpainter):
    image, mask = _image_and_mask(30, 45)
    grey_mask = Image.fromarray((mask * 7).astype(np.uint8))  # level 7 > 0: still "fill"
    out = inpainter(Image.fromarray(image), grey_mask)
    assert isinstance(out, Image.Image) and out.size == (45, 30) and out.mode == "RGB"
    assert np.array_equal(np.asarray(out), inpainter(image, mask))


def test_mask_of_another_size_is_an_error(inpainter):
    image, _ = _image_and_mask(30, 30)
    with pytest.raises(LatentpaintError, match="must be the same size"):
        inpainter(image, np.ones((31, 30), np.float32))


@pytest.mark.parametrize("mask_mode,delta", [("alpha", False), ("control", True)])
def test_safetensors_release_round_trip_is_bit_exact(tmp_path, mask_mode, delta):
    network = _network(3, mask_mode=mask_mode, delta=delta)
    for m in network.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
    save_release(network, tmp_path / "release", preset="thesis", source="test")
    loaded = load_network(tmp_path / "release")
    assert loaded.config == network.config
    for key, value in network.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    image, mask = _image_and_mask(40, 56, seed=1)
    assert np.array_equal(Inpainter(loaded)(image, mask), Inpainter(network)(image, mask))


@pytest.fixture(scope="module")
def training_checkpoint(tmp_path_factory, tiny):
    from latentpaint.training.runner import train

    config = tiny.config("pixel-alpha", "trainer.max_steps=1", "model.overrides={n_blocks: 2}")
    return train(config, tmp_path_factory.mktemp("run"))


def test_training_checkpoint_loads_as_network(training_checkpoint):
    from latentpaint.inference.checkpoints import read_training_checkpoint

    network = load_network(training_checkpoint)
    _, state = read_training_checkpoint(training_checkpoint)
    assert network.config["mask_mode"] == "alpha" and network.generator.n_blocks == 2
    for key, value in network.state_dict().items():
        assert torch.equal(state[f"network.{key}"], value)
    image, mask = _image_and_mask(24, 40)
    out = Inpainter.from_pretrained(training_checkpoint)(image, mask)
    assert np.array_equal(out[mask == 0], image[mask == 0])


def test_checkpoint_of_another_architecture_is_one_line_error(tmp_path):
    save_release(_network(), tmp_path / "release")
    config = (tmp_path / "release" / "config.json").read_text()
    (tmp_path / "release" / "config.json").write_text(config.replace('"n_blocks": 2', '"n_blocks": 3'))
    with pytest.raises(LatentpaintError, match="another architecture") as err:
        load_network(tmp_path / "release")
    assert "\n" not in str(err.value)


def test_truncated_checkpoints_are_one_line_errors(tmp_path, training_checkpoint):
    ckpt = tmp_path / "cut.ckpt"
    ckpt.write_bytes(training_checkpoint.read_bytes()[:4000])
    save_release(_network(), tmp_path / "release")
    weights = tmp_path / "release" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    for path in (ckpt, tmp_path / "release"):
        with pytest.raises(LatentpaintError, match="truncated") as err:
            load_network(path)
        assert "\n" not in str(err.value)


def test_inpaint_uint8_is_the_inpainters_prediction_step(inpainter):
    # models/apply.py runs the step below training; the Inpainter and validation both go through it
    from latentpaint.models.apply import image_to_tensor, inpaint_uint8, pad_to_multiple, tensor_to_image

    image, mask = _image_and_mask(37, 51)
    multiple = 2**inpainter.network.generator.n_downsampling
    with (
        torch.inference_mode()
    ):  # the prediction spelled out: pad, predict, crop, quantise, keep known pixels
        x = image_to_tensor(pad_to_multiple(image, multiple))
        m = torch.from_numpy(pad_to_multiple(mask, multiple))[None, None]
        pred = tensor_to_image(inpainter.network(x, m), 37, 51)
    expected = np.where(mask[..., None] > 0, pred, image)
    assert np.array_equal(inpaint_uint8(inpainter.network, image, mask), expected)
    assert np.array_equal(inpainter.predict_array(image, mask), expected)
    assert np.array_equal(inpaint_uint8(inpainter.network, image, 0 * mask), image)


def test_validation_predicts_the_quantised_inpainter_output(inpainter):
    from latentpaint.inference.inpainter import image_to_tensor
    from latentpaint.training.validation import predict

    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 30, 45, generator=g)
    mask = (torch.rand(1, 1, 30, 45, generator=g) > 0.6).float()
    rgb = (image[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
    expected = image_to_tensor(inpainter.predict_array(rgb, mask[0, 0].numpy()))
    assert torch.equal(predict(inpainter.network, image, mask), expected)
