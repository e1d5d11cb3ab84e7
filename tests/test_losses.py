"""The losses on cases whose values are known by hand, not only "trains and is finite"."""

import pytest
import torch
import torch.nn.functional as F

from latentpaint.errors import LatentpaintError
from latentpaint.losses.adversarial import discriminator_loss, feature_matching_loss, generator_loss
from latentpaint.losses.latent import latent_l1
from latentpaint.losses.perceptual import PerceptualLoss
from latentpaint.losses.pixel import masked_l1


def test_r1_penalty_of_a_linear_discriminator():
    # D(x) = 3x per pixel: dD/dx = 3 everywhere, so the per-sample squared gradient norm is 9 * 4 pixels
    real = torch.rand(1, 1, 2, 2, requires_grad=True)
    real_logits = 3 * real
    fake_logits = torch.zeros(1, 1, 2, 2)
    mask = torch.ones(1, 1, 2, 2)
    with_gp = discriminator_loss(real_logits, fake_logits, real, mask, gp_coef=0.5)
    without = discriminator_loss(3 * real.detach(), fake_logits, real, mask, gp_coef=0.0)
    assert float((with_gp - without).detach()) == pytest.approx(0.5 * 36, rel=1e-5)
    expected = F.softplus(-3 * real.detach()).mean() + F.softplus(fake_logits).mean()
    assert float(without) == pytest.approx(float(expected), rel=1e-6)


def test_mask_as_fake_target_counts_the_known_region_as_real():
    real = torch.zeros(1, 1, 4, 4)
    fake_logits = torch.full((1, 1, 4, 4), 2.0)
    no_hole = torch.zeros(1, 1, 4, 4)
    real_part = F.softplus(torch.zeros(())).item()
    as_real = discriminator_loss(real, fake_logits, real, no_hole, gp_coef=0.0, mask_as_fake_target=True)
    ignored = discriminator_loss(real, fake_logits, real, no_hole, gp_coef=0.0, mask_as_fake_target=False)
    assert float(ignored) == pytest.approx(real_part)  # nothing of the fake is judged without a hole
    assert float(as_real) == pytest.approx(real_part + F.softplus(torch.tensor(-2.0)).item())


def test_generator_and_feature_matching_losses():
    assert float(generator_loss(torch.zeros(2, 1, 3, 3))) == pytest.approx(F.softplus(torch.zeros(())).item())
    a, b = [torch.ones(1, 2, 2, 2)], [torch.zeros(1, 2, 2, 2)]
    assert float(feature_matching_loss(a, b)) == pytest.approx(1.0)


def test_masked_l1_weights_known_and_missing_pixels_separately():
    pred, target = torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])  # one missing pixel of four
    assert float(masked_l1(pred, target, mask, known=0.0, missing=1.0)) == pytest.approx(0.25)
    assert float(masked_l1(pred, target, mask, known=10.0, missing=0.0)) == pytest.approx(7.5)


def test_latent_l1_over_both_branches():
    refined = (torch.ones(1, 2, 2, 2), torch.zeros(1, 6, 2, 2))
    target = (torch.zeros(1, 2, 2, 2), torch.zeros(1, 6, 2, 2))
    assert float(latent_l1(refined, target)) == pytest.approx(2 / 8)
    assert float(latent_l1(torch.cat(refined, 1), target)) == pytest.approx(2 / 8)  # tensors work too


def test_perceptual_backbone_stays_in_eval_mode_and_frozen():
    loss = PerceptualLoss("resnet50", "random")
    bn = loss.stages[0][1]
    before = bn.running_mean.clone()
    loss.train()
    assert not loss.training and not any(p.requires_grad for p in loss.parameters())
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    value = loss(x, torch.rand(2, 3, 32, 32))
    value.backward()
    assert torch.equal(bn.running_mean, before) and x.grad is not None
    assert float(loss(x, x)) == 0.0


def test_perceptual_loss_names_the_missing_weight_file(tmp_path):
    with pytest.raises(LatentpaintError, match="resnet50"):
        PerceptualLoss("resnet50", str(tmp_path / "missing.pth"))


def _small_resnet_pl_file(tmp_path, prefix: str = "") -> tuple:
    """A random small backbone saved in the ADE20k file's key layout (bare resnet keys, no BN counters)."""
    from latentpaint.losses.resnet_pl import ADE20K_FILE, ADE20K_SUBDIR, DilatedResNet

    torch.manual_seed(0)
    net = DilatedResNet(width=8, blocks=(1, 2, 1, 1))
    for module in net.modules():  # non-trivial BN statistics, so a wrong load would show
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    state = {prefix + k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    folder = tmp_path / ADE20K_SUBDIR
    folder.mkdir(parents=True)
    torch.save(state, folder / ADE20K_FILE)
    return net.eval(), folder / ADE20K_FILE


@pytest.mark.parametrize("prefix", ["", "module."])
def test_resnet_pl_sums_stage_mses_of_the_ade20k_backbone(tmp_path, prefix):
    from latentpaint.losses.resnet_pl import ade20k_resnet50_dilated

    reference, path = _small_resnet_pl_file(tmp_path, prefix)
    # found in a weights folder in LaMa's layout, as the file itself, or directly in a weights folder
    assert ade20k_resnet50_dilated(tmp_path, width=8, blocks=(1, 2, 1, 1))[1] == path
    assert ade20k_resnet50_dilated(path, width=8, blocks=(1, 2, 1, 1))[1] == path
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / path.name).write_bytes(path.read_bytes())
    assert ade20k_resnet50_dilated(flat, width=8, blocks=(1, 2, 1, 1))[1] == flat / path.name
    loss = PerceptualLoss(
        "ade20k-resnet50dilated", str(tmp_path), resnet_pl_width=8, resnet_pl_blocks=(1, 2, 1, 1)
    )
    assert loss.weights_file == path and str(path) in loss.description

    pred, target = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    mean, std = loss.mean, loss.std
    with torch.no_grad():  # LaMa's ResNetPL, written out: normalise, stem, four layers, summed MSE
        x, y = (pred - mean) / std, (target - mean) / std
        stem = [reference.conv1, reference.bn1, reference.relu, reference.conv2, reference.bn2, reference.relu,
                reference.conv3, reference.bn3, reference.relu, reference.maxpool]  # fmt: skip
        for layer in stem:
            x, y = layer(x), layer(y)
        expected, shapes = 0.0, []
        for layer in (reference.layer1, reference.layer2, reference.layer3, reference.layer4):
            x, y = layer(x), layer(y)
            expected += float(torch.nn.functional.mse_loss(x, y))
            shapes.append(tuple(x.shape[1:]))
        assert float(loss(pred, target)) == pytest.approx(expected, rel=1e-5)
    # output stride 8: layer3 and layer4 dilate instead of downsampling
    assert shapes == [(32, 16, 16), (64, 8, 8), (128, 8, 8), (256, 8, 8)]


def test_resnet_pl_full_size_keys_match_the_mit_encoder():
    from latentpaint.losses.resnet_pl import DilatedResNet

    state = DilatedResNet().state_dict()
    assert state["conv1.weight"].shape == (64, 3, 3, 3) and state["conv3.weight"].shape == (128, 64, 3, 3)
    assert state["layer1.0.conv1.weight"].shape == (64, 128, 1, 1)  # the deep stem's 128 channels
    assert state["layer1.0.downsample.0.weight"].shape == (256, 128, 1, 1)
    assert state["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1) and "layer3.5.bn3.weight" in state
    assert not any(k.startswith("fc.") for k in state)
    net = DilatedResNet()
    assert net.layer3[0].conv2.stride == (1, 1) and net.layer3[1].conv2.dilation == (2, 2)
    assert net.layer4[0].conv2.dilation == (2, 2) and net.layer4[2].conv2.dilation == (4, 4)


def test_resnet_pl_missing_or_wrong_file_is_one_line(tmp_path):
    from latentpaint.losses.resnet_pl import ade20k_resnet50_dilated

    with pytest.raises(LatentpaintError, match=r"encoder_epoch_20\.pth.*ade20k/ade20k-resnet50dilated-ppm"):
        PerceptualLoss("ade20k-resnet50dilated", str(tmp_path))
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "encoder_epoch_20.pth")
    with pytest.raises(LatentpaintError, match="is not the ADE20k ResNet-50 dilated encoder"):
        ade20k_resnet50_dilated(tmp_path, width=8, blocks=(1, 1, 1, 1))


def test_resnet_pl_random_backbone_runs_and_says_what_it_is():
    loss = PerceptualLoss("ade20k-resnet50dilated", "random")
    assert loss.sum_stages and "ResNet-PL" in loss.description and "untrained" in loss.description
    x = torch.rand(1, 3, 32, 32)
    assert float(loss(x, x)) == 0.0 and float(loss(x, torch.rand(1, 3, 32, 32))) > 0
