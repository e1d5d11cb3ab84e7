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
