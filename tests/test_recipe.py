"""The CPU recipe's parts: pyramid prefill, resize upsampling, schedules, clipping, EMA, latent GAN, data."""

import json

import numpy as np
import pytest
import torch

from latentpaint.data.photos import assemble, split_groups
from latentpaint.errors import LatentpaintError
from latentpaint.inference.checkpoints import load_network, load_torch_file, save_release
from latentpaint.inference.classical import opencv_inpaint
from latentpaint.inference.export import export_torchscript
from latentpaint.models.discriminator import LatentDiscriminator
from latentpaint.models.network import InpaintingNetwork, ModelSpec
from latentpaint.models.prefill import pyramid_fill, telea_fill
from latentpaint.models.registry import create_generator
from latentpaint.training import inpainting
from latentpaint.training.optim import schedule_factor
from latentpaint.training.runner import train


# -- pyramid prefill ----------------------------------------------------------------------------------
def test_prefill_keeps_known_pixels_and_fills_a_constant_image_with_that_constant(rng_images):
    image, mask = rng_images(2, 64)
    filled = pyramid_fill(image, mask)
    assert torch.equal(filled * (1 - mask), image * (1 - mask))
    flat = torch.full_like(image, 0.3)
    assert torch.allclose(pyramid_fill(flat * (1 - mask), mask), flat, atol=1e-6)


def test_prefill_interpolates_between_the_colours_around_the_hole():
    image = torch.zeros(1, 3, 64, 64)
    image[..., 32:] = 1.0  # left half black, right half white
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 16:48, 16:48] = 1
    filled = pyramid_fill(image, mask)
    row = filled[0, 0, 32, 16:48]
    assert row[0] < 0.35 and row[-1] > 0.65  # the hole's edges take their neighbours' colours
    assert torch.all(row[1:] >= row[:-1] - 1e-6)  # and blend monotonically in between


def test_prefill_handles_a_fully_masked_image_and_odd_sizes():
    image = torch.rand(1, 3, 37, 53)
    out = pyramid_fill(image, torch.ones(1, 1, 37, 53))
    assert out.shape == image.shape and torch.isfinite(out).all()


def test_network_prefill_changes_what_the_encoder_sees_and_is_recorded(rng_images):
    image, mask = rng_images(1, 64)
    zeros = InpaintingNetwork("thesis", "control")
    pyramid = InpaintingNetwork("thesis", "control", prefill="pyramid")
    assert torch.equal(zeros.masked_image(image, mask), image * (1 - mask))
    assert not torch.equal(pyramid.masked_image(image, mask), image * (1 - mask))
    assert "prefill" not in zeros.config and pyramid.config["prefill"] == "pyramid"
    with pytest.raises(ValueError, match="prefill"):
        InpaintingNetwork("thesis", prefill="criminisi")


def test_telea_prefill_keeps_known_pixels_and_matches_opencv(rng_images):
    image, mask = rng_images(2, 64)
    filled = telea_fill(image, mask)
    assert torch.equal(filled * (1 - mask), image * (1 - mask))
    rgb = (image[1].permute(1, 2, 0) * 255 + 0.5).to(torch.uint8).numpy()
    expected = opencv_inpaint(rgb, mask[1, 0].numpy(), "telea")
    got = (filled[1].permute(1, 2, 0) * 255 + 0.5).to(torch.uint8).numpy()
    assert np.array_equal(got, expected)
    flat = torch.full_like(image, 0.4)  # a flat image stays (nearly) flat: the fill carries border colours in
    assert torch.allclose(telea_fill(flat * (1 - mask), mask), flat, atol=4 / 255)  # Telea adds a few levels


def test_telea_prefill_network_trains_but_refuses_export(tmp_path, rng_images):
    image, mask = rng_images(1, 64)
    net = InpaintingNetwork("thesis", "control", prefill="telea", ngf=8)
    assert net.config["prefill"] == "telea"
    assert not torch.equal(net.masked_image(image, mask), image * (1 - mask))
    net(image, mask).mean().backward()  # gradients still reach the weights (the fill itself needs none)
    assert net.mask_control is not None
    with pytest.raises(LatentpaintError, match="Telea"):
        export_torchscript(net.eval(), tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_release_round_trip_keeps_prefill_and_upsampling(tmp_path, rng_images):
    net = InpaintingNetwork("thesis", "control", prefill="pyramid", upsample="resize").eval()
    save_release(net, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["prefill"] == "pyramid"
    loaded = load_network(tmp_path).eval()
    image, mask = rng_images(1, 64)
    with torch.no_grad():
        assert torch.equal(loaded(image, mask), net(image, mask))


# -- resize-convolution upsampling --------------------------------------------------------------------
def test_resize_upsampling_is_an_option_with_its_own_keys():
    lama = create_generator("thesis")
    resize = create_generator("thesis", upsample="resize")
    assert "upsample" not in lama.config  # LaMa-layout configs are unchanged
    assert "model.15.weight" in lama.state_dict() and "model.15.1.weight" in resize.state_dict()
    x = torch.rand(1, 4, 64, 64)
    assert resize(x).shape == lama(x).shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="upsample"):
        create_generator("thesis", upsample="bilinear-ish")


def _checkerboard_energy(image: torch.Tensor) -> float:
    """Share of spectral energy at the 2-pixel period (the transposed conv's checkerboard)."""
    spectrum = torch.fft.fft2(image - image.mean()).abs()
    h, w = image.shape[-2:]
    return float(spectrum[..., h // 2, :].sum() + spectrum[..., :, w // 2].sum()) / float(spectrum.sum())


def test_resize_upsampling_has_no_checkerboard_on_a_flat_latent():
    torch.manual_seed(0)
    energies = {}
    for kind in ("transpose", "resize"):
        g = create_generator("thesis", input_nc=3, upsample=kind).eval()
        z = torch.ones(1, g.latent_channels, 8, 8) * 0.5  # a flat latent, as a regressed hole tends to be
        n_local = g.latent_channels - int(g.latent_channels * 0.75)
        with torch.no_grad():
            out = g.decoder((z[:, :n_local], z[:, n_local:]))
        energies[kind] = _checkerboard_energy(out[0, 0, 8:-8, 8:-8])
    assert energies["resize"] < energies["transpose"] / 10


# -- identity refiner -----------------------------------------------------------------------------------
def test_identity_refiner_starts_as_the_identity(rng_images):
    from latentpaint.models.refiner_init import init_refiner_as_identity

    net = InpaintingNetwork("thesis", "control", prefill="pyramid").train()
    init_refiner_as_identity(net)
    image, mask = rng_images(2, 64)
    z = net.encode(image, mask)
    out = net.refine(z)
    n_blocks = net.generator.n_blocks
    for before, after in zip(z, out):  # each block adds ReLU(eps) = eps
        assert torch.allclose(after, before + n_blocks * 1e-3, atol=1e-5)
    # and it trains: the zeroed BN scales get a gradient (ReLU(eps) has slope 1)
    torch.manual_seed(0)
    sum((t * torch.randn_like(t)).sum() for t in out).backward()  # not a plain sum: BN's x_hat sums to 0
    assert all(blk.conv2.bn_l.weight.grad.abs().sum() > 0 for blk in net.generator.refiner)


# -- schedules ----------------------------------------------------------------------------------------
def test_schedule_warms_up_linearly_and_cosine_ends_at_zero():
    assert schedule_factor(0, "cosine", 10, 100) == pytest.approx(0.1)
    assert schedule_factor(9, "cosine", 10, 100) == pytest.approx(1.0)
    assert schedule_factor(10, "cosine", 10, 100) == pytest.approx(1.0)
    assert schedule_factor(55, "cosine", 10, 100) == pytest.approx(0.5)
    assert schedule_factor(100, "cosine", 10, 100) == pytest.approx(0.0)
    assert schedule_factor(50, "constant", 0, 100) == 1.0


# -- training: EMA, clipping, latent adversarial -------------------------------------------------------
@pytest.fixture(scope="module")
def recipe_autoencoder(tmp_path_factory, tiny):
    out = tmp_path_factory.mktemp("recipe-ae")
    return str(train(tiny.config("recipe-autoencoder", "trainer.max_steps=2", size=32), out))


def test_recipe_trains_and_its_checkpoint_holds_the_ema_weights(recipe_autoencoder, tmp_path, tiny):
    finals = {}
    for decay in (0.0, 0.5):
        sets = ["trainer.max_steps=3", f"autoencoder={recipe_autoencoder}", f"optim.ema_decay={decay}"]
        cfg = tiny.config("recipe", *sets, size=32)
        finals[decay] = load_torch_file(train(cfg, tmp_path / str(decay)))["state_dict"]
    key = "network.generator.model.5.conv1.ffc.convl2l.weight"
    assert not torch.equal(
        finals[0.0][key], finals[0.5][key]
    )  # same seed and data: only the averaging differs
    network = load_network(tmp_path / "0.5" / "checkpoints" / "last.ckpt")
    assert torch.equal(network.state_dict()["generator.model.5.conv1.ffc.convl2l.weight"], finals[0.5][key])
    assert network.prefill == "telea" and network.output_kind == "residual"


def test_gradient_clipping_bounds_the_generator_gradient(recipe_autoencoder, tmp_path, monkeypatch, tiny):
    sets = ["trainer.max_steps=1", f"autoencoder={recipe_autoencoder}", "trainer.gradient_clip_val=0.001"]
    cfg = tiny.config("recipe", *sets, size=32)
    captured = {}
    original = inpainting.manual_step

    def spy(system, optimizer, loss, raw=False):
        original(system, optimizer, loss, raw)
        if not raw:
            grads = [p.grad for p in system.network.parameters() if p.grad is not None]
            captured["norm"] = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))

    monkeypatch.setattr(inpainting, "manual_step", spy)
    train(cfg, tmp_path)
    assert captured["norm"] <= 0.001 * 1.01


def test_latent_adversarial_trains_without_decoding(recipe_autoencoder, tmp_path, monkeypatch, tiny):
    def no_decoding(self, z):
        raise AssertionError("latent-adversarial must not decode")

    monkeypatch.setattr(InpaintingNetwork, "decode", no_decoding)
    sets = ["trainer.max_steps=2", f"autoencoder={recipe_autoencoder}"]
    sets.append("model.overrides={upsample: resize, n_downsampling: 2}")  # the recipe autoencoder's
    cfg = tiny.config("latent-adversarial", *sets, size=32)
    final = train(cfg, tmp_path)
    state = load_torch_file(final)["state_dict"]
    assert any(k.startswith("latent_discriminator.") for k in state)
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_latent_discriminator_judges_latent_maps():
    d = LatentDiscriminator(64)
    logits, features = d(torch.rand(2, 64, 16, 16))
    assert logits.shape == (2, 1, 8, 8) and len(features) == 3


# -- data photos --------------------------------------------------------------------------------------
def test_split_is_by_group_and_seeded():
    groups = ["a", "a", "b", "c", "d", "e", "f", "g"]
    held = split_groups(groups, 0.3, seed=1)
    assert held == split_groups(groups, 0.3, seed=1) and 1 <= len(held) < 7
    assert split_groups(groups, 0.0, seed=1) == set()


def test_data_photos_writes_a_scene_split_with_sources(tmp_path):
    records = assemble(tmp_path, opencv_samples=None, heldout_fraction=0.3, seed=0)
    sources = json.loads((tmp_path / "sources.json").read_text())
    assert len(sources["photos"]) == len(records) >= 9
    by_group: dict[str, set[str]] = {}
    for r in records:
        by_group.setdefault(r.group, set()).add(r.split)
        assert (tmp_path / r.split / f"{r.name}.png").is_file() and r.licence
    assert all(len(splits) == 1 for splits in by_group.values())  # a scene never straddles the split
    assert {r.split for r in records} == {"train", "heldout"}


# -- residual output: prefill + D(R(z)) - D(z) ---------------------------------------------------------
def test_residual_output_of_an_unchanged_refiner_is_exactly_the_prefill(rng_images, monkeypatch):
    image, mask = rng_images(1, 64)
    residual = InpaintingNetwork("thesis", "control", prefill="pyramid", output="residual").eval()
    direct = InpaintingNetwork("thesis", "control", prefill="pyramid").eval()
    direct.load_state_dict(residual.state_dict())
    for net in (residual, direct):
        monkeypatch.setattr(net, "refine", lambda z: z)  # a refiner that changes nothing
    with torch.no_grad():
        prefill = pyramid_fill(image, mask)
        assert torch.allclose(residual(image, mask), prefill.clamp(0, 1), atol=1e-6)
        assert not torch.allclose(direct(image, mask), prefill, atol=1e-2)  # the autoencoder's error
    assert residual.config["output"] == "residual" and "output" not in direct.config


def test_residual_output_needs_a_prefill_and_round_trips_through_a_release(tmp_path, rng_images):
    with pytest.raises(ValueError, match="residual"):
        InpaintingNetwork("thesis", "control", output="residual")
    with pytest.raises(LatentpaintError, match="output"):
        ModelSpec.from_dict({"arch": "thesis", "mask_mode": "control", "output": "residual"})
    assert ModelSpec.from_dict({"arch": "thesis", "mask_mode": "control"}).output == "direct"
    net = InpaintingNetwork("thesis", "control", prefill="pyramid", output="residual", ngf=8).eval()
    save_release(net, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["output"] == "residual"
    loaded = load_network(tmp_path).eval()
    image, mask = rng_images(1, 64)
    with torch.no_grad():
        assert torch.equal(loaded(image, mask), net(image, mask))
    assert export_torchscript(net, tmp_path / "m.pt") <= 1e-4  # a pyramid prefill exports, residual or not


def test_pixel_loss_on_the_residual_output_reaches_the_identity_refiner(recipe_autoencoder, tmp_path, tiny):
    sets = [
        "trainer.max_steps=2",
        f"autoencoder={recipe_autoencoder}",
        "model.output=residual",
        "loss.mode=pixel",
    ]
    final = train(tiny.config("recipe", *sets, "optim.ema_decay=0", size=32), tmp_path)
    state = load_torch_file(final)["state_dict"]
    # identity init sets these BN scales to exactly 0: two steps of the pixel loss move them
    assert state["network.generator.model.5.conv2.bn_l.weight"].abs().max() > 0
    assert load_network(final).output_kind == "residual"
    with pytest.raises(LatentpaintError, match="prefill"):  # refused where the config is read
        tiny.config("recipe", *sets, "model.prefill=none", size=32)


def test_discriminator_width_is_a_loss_setting(recipe_autoencoder, tmp_path, tiny):
    sets = [
        "trainer.max_steps=1",
        f"autoencoder={recipe_autoencoder}",
        "model.output=residual",
        "loss.mode=pixel",
    ]
    sets += ["loss.adversarial=1", "loss.feature_matching=1", "loss.discriminator_ndf=8", "optim.ema_decay=0"]
    state = load_torch_file(train(tiny.config("recipe", *sets, size=32), tmp_path))["state_dict"]
    assert state["discriminator.model0.0.weight"].shape[0] == 8  # LaMa's default would be 64
    with pytest.raises(LatentpaintError, match="discriminator_ndf"):
        tiny.config("recipe", "loss.discriminator_ndf=0")
