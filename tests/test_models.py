import pytest
import torch

from latentpaint.errors import LatentpaintError
from latentpaint.models import (
    DeltaRefiner,
    InpaintingNetwork,
    MaskControl,
    NLayerDiscriminator,
    create_generator,
    list_generators,
)
from latentpaint.models.network import latent_difference

EXPECTED_PARAMS = {"big-lama": 50_975_875, "lama-fourier": 27_048_835}


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", ["big-lama", "lama-fourier"])
def test_lama_parameter_counts(name):
    assert n_params(create_generator(name)) == EXPECTED_PARAMS[name]


def test_thesis_parameter_count_about_043m():
    assert 400_000 < n_params(create_generator("thesis")) < 460_000


def test_big_lama_state_dict_keys_match_lama_layout():
    shapes = {k: tuple(v.shape) for k, v in create_generator("big-lama").state_dict().items()}
    assert shapes["model.1.ffc.convl2l.weight"] == (64, 4, 7, 7)
    assert shapes["model.4.ffc.convl2g.weight"] == (384, 256, 3, 3)
    assert shapes["model.5.conv1.ffc.convg2g.fu.conv_layer.weight"] == (384, 384, 1, 1)
    assert shapes["model.22.conv2.ffc.convg2g.conv2.weight"] == (384, 192, 1, 1)
    assert shapes["model.24.weight"] == (512, 256, 3, 3)  # first ConvTranspose2d
    assert shapes["model.34.weight"] == (3, 64, 7, 7)
    assert not any(k.startswith(("encoder", "refiner", "decoder")) for k in shapes)


def test_unknown_generator_is_a_clear_error():
    with pytest.raises(LatentpaintError, match="big-lama"):
        create_generator("huge-lama")


@pytest.mark.parametrize("name", list_generators())
def test_every_preset_forward_backward_small(name):
    # registry-driven: a new preset is covered without a new test
    overrides = {} if name == "thesis" else {"ngf": 8}
    g = create_generator(name, **overrides)
    x = torch.rand(1, 4, 32, 32)
    y = g(x)
    assert y.shape == (1, 3, 32, 32) and torch.isfinite(y).all()
    assert 0 <= y.min() and y.max() <= 1  # sigmoid output
    y.mean().backward()
    missing = [n for n, p in g.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"


@pytest.mark.parametrize("size", [32, 40, 64])
def test_encoder_refiner_decoder_compose_to_generator(size):
    g = create_generator("thesis").eval()
    x = torch.rand(2, 4, size, size)
    with torch.no_grad():
        assert torch.equal(g.decoder(g.refiner(g.encoder(x))), g(x))
    # views share the generator's modules: no weight copies
    assert g.encoder[1] is g.model[1] and g.refiner[0] is g.model[5] and g.decoder[0] is g.model[14]


def test_mask_control_is_identity_at_init(rng_images):
    image, mask = rng_images()
    net = InpaintingNetwork("thesis", "control").eval()
    with torch.no_grad():
        controlled = net.encode(image, mask)
        plain = net.generator.encoder(net.masked_image(image, mask))
    for a, b in zip(controlled, plain):
        assert torch.equal(a, b)


def test_mask_control_residuals_match_encoder_stages(rng_images):
    _, mask = rng_images()
    residuals = MaskControl(ngf=8)(mask)
    shapes = [tuple(r.shape) for r in residuals[:-1]]
    assert shapes == [(2, 8, 64, 64), (2, 16, 32, 32), (2, 32, 16, 16)]
    local, global_ = residuals[-1]
    assert local.shape == (2, 16, 8, 8) and global_.shape == (2, 48, 8, 8)


def test_mask_control_learns_to_change_encoder_output(rng_images):
    image, mask = rng_images()
    net = InpaintingNetwork("thesis", "control")
    opt = torch.optim.SGD(net.mask_control.parameters(), lr=0.1)
    z = net.encode(image, mask)
    loss = sum(t.mean() for t in z)
    loss.backward()
    assert net.mask_control.zero_convs[0].weight.grad.abs().sum() > 0
    opt.step()
    net.eval()
    with torch.no_grad():
        changed = net.encode(image, mask)
        plain = net.generator.encoder(net.masked_image(image, mask))
    assert not torch.equal(changed[0], plain[0])


def test_alpha_network_takes_four_channels(rng_images):
    image, mask = rng_images()
    net = InpaintingNetwork("thesis", "alpha")
    assert net.generator.config["input_nc"] == 4 and net.mask_control is None
    out = net.inpaint(image, mask)
    assert torch.equal(out * (1 - mask), image * (1 - mask))


def test_delta_refiner_adds_refiner_output(rng_images):
    image, mask = rng_images()
    net = InpaintingNetwork("thesis", "control", delta=True).eval()
    with torch.no_grad():
        z = net.encode(image, mask)
        r = net.generator.refiner(z)
        d = net.refine(z)
        plain = InpaintingNetwork("thesis", "control", delta=False).eval()
        plain.load_state_dict(net.state_dict())
        p = plain.refine(z)
    # the delta network's output is the plain network's plus its input: dropping the residual fails here
    assert torch.allclose(d[0], z[0] + p[0]) and torch.allclose(d[1], z[1] + p[1])
    assert torch.allclose(p[0], r[0]) and not torch.allclose(d[0], p[0])
    assert isinstance(DeltaRefiner(net.generator.refiner), torch.nn.Module)


def test_latent_difference_is_zero_for_equal_features(rng_images):
    image, mask = rng_images()
    g = create_generator("thesis", input_nc=3).eval()
    with torch.no_grad():
        z = g.encoder(image)
        diff = latent_difference(z, z)
    assert all(float(t.abs().max()) == 0 for t in diff)


def test_discriminator_returns_logits_and_features():
    d = NLayerDiscriminator()
    logits, features = d(torch.rand(2, 3, 64, 64))
    assert logits.shape[1] == 1 and len(features) == 5
    assert [f.shape[1] for f in features] == [64, 128, 256, 512, 512]
    assert "model0.0.weight" in d.state_dict() and "model5.0.weight" in d.state_dict()
