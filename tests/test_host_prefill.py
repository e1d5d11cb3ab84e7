"""Host prefills (Telea) run where the uint8 image is: in the dataset's workers for training and before the
upload at inference, never inside a training step; results are the same as filling inside the network."""

import sys

import numpy as np
import pytest
import torch

from latentpaint.data.datamodule import InpaintingDataModule
from latentpaint.data.datasets import TrainingDataset, batch_to_float
from latentpaint.inference.export import HOST_FILL_NAMES
from latentpaint.inference.inpainter import Inpainter
from latentpaint.models import damage, prefill
from latentpaint.models.apply import image_to_tensor, pad_to_multiple, tensor_to_image
from latentpaint.models.network import PREFILLS, InpaintingNetwork
from latentpaint.training.inpainting import build_inpainting_system
from latentpaint.training.runner import train


def test_the_registry_is_what_configs_may_name():
    assert set(prefill.HOST_PREFILLS) == {"telea", "fsr", "patchmatch", "shiftmap"}
    assert set(prefill.DEVICE_PREFILLS) == {"pyramid"}
    assert PREFILLS == ("none", "pyramid", "telea", "fsr", "patchmatch", "shiftmap")
    assert set(HOST_FILL_NAMES) == set(prefill.HOST_PREFILLS)  # export names each in its refusal


def test_telea_uint8_keeps_known_pixels_and_skips_an_empty_hole(monkeypatch):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    mask = np.zeros((40, 56), np.float32)
    mask[10:25, 8:30] = 1
    filled = prefill.telea_uint8(image, mask)
    assert filled.dtype == np.uint8 and filled.shape == image.shape
    assert np.array_equal(filled[mask == 0], image[mask == 0]) and not np.array_equal(filled, image)

    def no_opencv(*args):
        raise AssertionError("cv2.inpaint ran for an empty hole")

    monkeypatch.setattr(prefill.cv2, "inpaint", no_opencv)
    assert np.array_equal(prefill.telea_uint8(image, np.zeros((40, 56), np.float32)), image)


def test_dataset_prefill_is_the_host_function_of_the_same_sample():
    plain = TrainingDataset("builtin", size=32, seed=3)
    data = TrainingDataset("builtin", size=32, seed=3, prefill="telea", uint8=True)
    for index in (0, 5, 13):
        item = data[index]
        assert item["image"].dtype == torch.uint8 and item["prefill"].dtype == torch.uint8
        crop = item["image"].permute(1, 2, 0).numpy()
        mask = item["mask"][0].numpy()
        expected = prefill.telea_uint8(crop, mask)
        assert np.array_equal(item["prefill"].permute(1, 2, 0).numpy(), expected)
        # the float batch of the uint8 one is exactly the float dataset's
        floats = batch_to_float({k: v[None] for k, v in item.items()})
        assert torch.equal(floats["image"][0], plain[index]["image"])
        assert torch.equal(floats["mask"][0], plain[index]["mask"])
    # a device prefill is the network's business: nothing extra in the batch
    assert "prefill" not in TrainingDataset("builtin", size=32, prefill="pyramid")[0]


def test_datamodule_ships_uint8_and_hands_floats_to_the_step():
    module = InpaintingDataModule("builtin", 32, 2, 0, "wide", seed=0, max_steps=2, prefill="telea")
    batch = next(iter(module.train_dataloader()))
    assert {k: v.dtype for k, v in batch.items()} == dict.fromkeys(("image", "mask", "prefill"), torch.uint8)
    floats = module.on_after_batch_transfer(batch, 0)
    assert all(v.dtype == torch.float32 for v in floats.values())
    assert floats["image"].max() <= 1 and set(floats["mask"].unique().tolist()) <= {0.0, 1.0}


def test_network_with_prefilled_equals_the_network_filling_itself(rng_images):
    image, mask = rng_images(2, 64)
    net = InpaintingNetwork("thesis", "control", prefill="telea", output="residual").eval()
    rgb = (image * 255).round().byte().permute(0, 2, 3, 1).numpy()
    filled = np.stack([prefill.telea_uint8(i, m[0].numpy()) for i, m in zip(rgb, mask)])
    prefilled = torch.from_numpy(filled).permute(0, 3, 1, 2).float() / 255
    image = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255  # 8-bit images, as loaders give
    with torch.no_grad():
        assert torch.equal(net(image, mask, prefilled=prefilled), net(image, mask))
    with pytest.raises(ValueError, match="prefill"):
        InpaintingNetwork("thesis", "control", prefill="pyramid")(image, mask, prefilled=prefilled)


def _fail_in_step(system, monkeypatch):
    """Makes every host prefill fail while `system.training_step` runs (the loader may still call it)."""
    state = {"in_step": False, "calls": 0}
    real = dict(prefill.HOST_PREFILLS)

    def guarded(name):
        def fill(image, mask):
            if state["in_step"]:
                raise AssertionError(f"host prefill {name} ran inside training_step")
            state["calls"] += 1
            return real[name](image, mask)

        return fill

    for name in real:
        monkeypatch.setitem(prefill.HOST_PREFILLS, name, guarded(name))
    step = type(system).training_step

    def watched(self, batch, batch_idx):
        state["in_step"] = True
        try:
            return step(self, batch, batch_idx)
        finally:
            state["in_step"] = False

    monkeypatch.setattr(type(system), "training_step", watched)
    return state


def test_training_step_never_runs_the_host_prefill(tmp_path, monkeypatch, tiny):
    sets = ["trainer.max_steps=2", "model.prefill=telea", "model.output=residual", "loss.mode=pixel"]
    config = tiny.config("pixel-control", *sets, size=32)
    stage1 = config.model.spec.autoencoder_generator().state_dict()
    system = build_inpainting_system(config, stage1)
    state = _fail_in_step(system, monkeypatch)
    import latentpaint.training.runner as runner

    monkeypatch.setattr(runner, "build_system", lambda config, restoring=False: system)
    train(config, tmp_path)
    assert state["calls"] >= 2 * 2  # batch 2, two steps: every fill came from the loader
    # and a batch without its prefill is refused instead of filled on the host
    batch = {"image": torch.rand(1, 3, 32, 32), "mask": torch.ones(1, 1, 32, 32)}
    with pytest.raises(Exception, match="prefill"):
        system.training_step(batch, 0)


def _old_inference(network, image, mask):
    """What Inpainter.predict_array computed before host prefills moved out of the forward pass."""
    multiple = 2**network.generator.n_downsampling
    x = image_to_tensor(pad_to_multiple(image, multiple))
    m = torch.from_numpy(pad_to_multiple(mask, multiple))[None, None]
    with torch.inference_mode():
        pred = tensor_to_image(network(x, m), *image.shape[:2])  # the network fills on the host itself
    return np.where(mask[..., None] > 0, pred, image)


def test_shipped_model_output_is_byte_identical_to_filling_inside_the_network(monkeypatch):
    from skimage.data import astronaut

    inpainter = Inpainter.from_pretrained("default", device="cpu")
    assert inpainter.network.prefill == "telea"
    image = np.ascontiguousarray(astronaut()[40:157, 90:293])  # odd sizes: padding matters
    mask = np.zeros(image.shape[:2], np.float32)
    mask[30:70, 40:120] = 1
    mask[90:, 150:160] = 1
    expected = _old_inference(inpainter.network, image, mask)
    calls = []
    real = prefill.host_fill_tensor
    monkeypatch.setattr(prefill, "host_fill_tensor", lambda *a: calls.append(1) or real(*a))
    assert np.array_equal(inpainter(image, mask), expected)
    assert not calls  # the fill came from the uint8 image, not from tensors inside the forward pass
    damage_map = inpainter.latent_damage(image, mask)
    assert not calls and damage_map.shape == image.shape


def test_clean_encoding_runs_no_prefill(rng_images, monkeypatch):
    image, _ = rng_images(1, 32)
    net = InpaintingNetwork("thesis", "control", prefill="telea").eval()
    monkeypatch.setattr(prefill, "host_fill_tensor", lambda *a: (_ for _ in ()).throw(AssertionError))
    z = damage.encode_clean(net, image)
    assert all(torch.isfinite(t).all() for t in z if torch.is_tensor(t))


# -- texture prefills (models/texture_fill.py) at a capped working size ---------------------------------------
def _striped_sample(h: int = 48, w: int = 64):
    x = np.arange(w)
    row = (128 + 100 * np.sin(x / 1.3)).astype(np.uint8)
    image = np.repeat(np.repeat(row[None, :, None], h, 0), 3, 2)
    mask = np.zeros((h, w), np.float32)
    mask[12:30, 20:40] = 1
    return image, mask


@pytest.mark.parametrize("kind", ["fsr", "patchmatch", "shiftmap"])
def test_texture_prefills_keep_known_pixels_and_continue_stripes_better_than_telea(kind):
    image, mask = _striped_sample()
    filled = prefill.host_prefill(kind, image, mask)
    hole = mask > 0.5
    assert filled.dtype == np.uint8 and np.array_equal(filled[~hole], image[~hole])
    error = np.abs(filled.astype(float) - image)[hole].mean()
    smooth = np.abs(prefill.telea_uint8(image, mask).astype(float) - image)[hole].mean()
    assert error < smooth  # the stripes go on through the hole; Telea smears them


def test_texture_prefills_run_at_the_working_size_and_fill_the_full_size_hole():
    image, mask = _striped_sample(96, 128)
    seen = []

    def spy(small, hole, seed=0):
        seen.append((small.shape, hole.shape, hole.sum()))
        return np.full_like(small, 77)

    out = prefill.texture_uint8(spy, image, mask, working_side=64)
    assert seen[0][0] == (48, 64, 3) and seen[0][1] == (48, 64) and seen[0][2] >= (18 * 20) // 4
    hole = mask > 0.5
    assert np.all(out[hole] == 77) and np.array_equal(out[~hole], image[~hole])
    prefill.texture_uint8(spy, image, mask, working_side=None)
    assert seen[1][0] == image.shape  # no cap: the image itself


def test_a_missing_texture_backend_is_one_line_naming_the_package(monkeypatch):
    from latentpaint.models import texture_fill

    image, mask = _striped_sample()
    monkeypatch.delattr(texture_fill.cv2, "xphoto", raising=False)
    with pytest.raises(texture_fill.MissingBackend, match="opencv-contrib-python-headless") as info:
        prefill.host_prefill("fsr", image, mask)
    assert "\n" not in str(info.value)
    monkeypatch.setitem(sys.modules, "patchmatch_cython", None)  # `import patchmatch_cython` fails
    with pytest.raises(texture_fill.MissingBackend, match="pip install patchmatch-cython"):
        prefill.host_prefill("patchmatch", image, mask)
