"""Latent contextual attention: which cells it scores, what it copies, and the retrieval loss."""

from __future__ import annotations

import torch

from latentpaint.losses.attention import attention_retrieval_loss
from latentpaint.models.attention import LatentContextualAttention, latent_cells


def box_mask(size: int = 32, top: int = 8, left: int = 8, side: int = 12) -> torch.Tensor:
    mask = torch.zeros(1, 1, size, size)
    mask[..., top : top + side, left : left + side] = 1
    return mask


def test_hole_cells_cover_every_missing_pixel_and_known_cells_keep_a_margin():
    mask = box_mask()
    hole, known = latent_cells(mask, 4)
    grid_hole, grid_known = hole.view(8, 8), known.view(8, 8)
    assert grid_hole[2:5, 2:5].all() and grid_hole.sum() == 9  # pixels 8..19 fall in cells 2..4
    assert not (grid_hole & grid_known).any()
    # two cells around the hole are neither: their encoding saw the hole
    assert not grid_known[0:7, 0:7].any() and grid_known[7].all() and grid_known[:, 7].all()


def test_eager_matches_equal_the_dense_scores_used_for_export():
    torch.manual_seed(0)
    attention = LatentContextualAttention(8)
    features = torch.randn(2, 8, 8, 8)
    mask = torch.cat([box_mask(), box_mask(top=0, left=16)])
    hole, known = latent_cells(mask, 4)
    eager = attention.best_matches(features, known, hole)
    dense = attention.logits(features, known).argmax(-1)
    assert torch.equal(eager[hole], dense[hole])
    assert torch.gather(known, 1, eager)[hole].all()  # every hole cell copies a clean known cell


def test_consistent_matches_paste_an_exact_shifted_copy_and_keep_other_cells():
    values = torch.arange(2 * 8 * 8, dtype=torch.float32).view(1, 2, 8, 8)
    hole = torch.zeros(1, 8, 8, dtype=torch.bool)
    hole[0, 2:5, 1:4] = True
    own = torch.arange(64).view(1, 8, 8)
    matches = torch.where(hole, own + 4, own).view(1, 64)  # every hole cell copies the cell 4 to the right
    out = LatentContextualAttention(2).copy(values, matches, hole.view(1, 64))
    assert torch.equal(out[..., 2:5, 1:4], values[..., 2:5, 5:8])  # all votes agree: the copy is exact
    keep = ~hole[:, None].expand_as(values)
    assert torch.equal(out[keep], values[keep])


def test_an_image_without_known_cells_copies_nothing():
    attention = LatentContextualAttention(4)
    features, values = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    hole, known = latent_cells(torch.ones(1, 1, 32, 32), 4)
    matches = attention.best_matches(features, known, hole)
    assert torch.equal(attention.copy(values, matches, hole), values)


def test_retrieval_loss_prefers_embeddings_that_rank_like_the_ground_truth_and_trains_the_projection():
    torch.manual_seed(0)
    attention = LatentContextualAttention(8, dim=8)
    with torch.no_grad():  # a projection that passes the latent through unchanged
        attention.proj.weight.copy_(torch.eye(8)[:, :, None, None])
        attention.proj.bias.zero_()
    truth = torch.randn(2, 8, 8, 8)
    mask = torch.cat([box_mask(), torch.zeros(1, 1, 32, 32)])  # the second image has no hole
    hole, known = latent_cells(mask, 4)
    aligned = attention_retrieval_loss(attention, truth, truth, hole, known)
    scrambled = attention_retrieval_loss(attention, torch.randn_like(truth), truth, hole, known)
    assert torch.isfinite(aligned) and aligned < scrambled
    scrambled.backward()
    assert attention.proj.weight.grad.abs().sum() > 0 and attention.log_temperature.grad is not None


# -- in the network, the config and training ---------------------------------------------------------------
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from latentpaint.errors import LatentpaintError  # noqa: E402
from latentpaint.models.network import InpaintingNetwork, ModelSpec  # noqa: E402
from latentpaint.training.config import RunConfig  # noqa: E402

TINY = {"ngf": 8, "n_blocks": 1, "n_downsampling": 2, "upsample": "resize"}


def attention_network(prefill: str = "pyramid") -> InpaintingNetwork:
    torch.manual_seed(0)
    net = InpaintingNetwork(
        "thesis", "control", prefill=prefill, output="residual", attention="contextual", **TINY
    )
    with torch.no_grad():
        net.generator.model[-2].weight.mul_(20)  # spread the decoder's sigmoid: a paste shows in pixels
    return net.eval()


def striped(size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Vertical stripes (a texture a smooth fill cannot continue) and a box hole."""
    x = torch.arange(size, dtype=torch.float32)
    image = (0.5 + 0.4 * torch.sin(x / 1.5)).expand(1, 3, size, size).clone()
    return image, box_mask(size, top=8, left=8, side=12)


def test_an_attention_network_changes_only_the_hole_and_its_spec_round_trips():
    net = attention_network()
    image, mask = striped(64)
    with torch.no_grad():
        out = net.inpaint(image, mask)
        prefill = net.masked_image(image, mask)
    assert torch.equal(out * (1 - mask), image * (1 - mask))
    assert (out - prefill).abs().max() > 1e-3  # the paste's decoded change reaches the hole
    plain = InpaintingNetwork("thesis", "control", prefill="pyramid", output="residual", **TINY)
    spec = ModelSpec.from_dict(net.spec.to_dict())
    assert spec.attention == "contextual" and net.config["attention"] == "contextual"
    assert "attention" not in plain.spec.to_dict()  # releases without it are written as before


@pytest.mark.parametrize("changes", [{"mask_mode": "alpha"}, {"output": "direct"}, {"attention": "global"}])
def test_attention_needs_mask_control_and_a_residual_output(changes):
    config = {**attention_network().spec.to_dict(), **changes}
    with pytest.raises(LatentpaintError, match="attention"):
        ModelSpec.from_dict(config, "config.json")


def test_the_run_config_refuses_an_attention_loss_without_attention():
    with pytest.raises(LatentpaintError, match="loss.attention"):
        RunConfig.read({"loss": {"attention": 1.0}})
    with pytest.raises(LatentpaintError, match="mask_mode control"):
        RunConfig.read({"model": {"attention": "contextual", "prefill": "telea", "output": "residual"}})


def test_the_texture_recipe_trains_where_to_copy_from_without_decoding(tiny, monkeypatch):
    cfg, system, batch = tiny.system("recipe-texture", "model.prefill=telea", size=32)
    assert cfg.model.attention == "contextual" and cfg.loss.attention == 1.0
    decoded = []
    monkeypatch.setattr(system.network, "decode", lambda z: decoded.append(z) or z[0])
    logs: dict = {}
    total, _ = system.train().generator_loss(batch["image"], batch["mask"], logs, batch["prefill"])
    assert torch.isfinite(logs["attention"]) and not decoded
    total.backward()
    attention, refiner = system.network.attention, system.network.generator.refiner
    assert attention.proj.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in refiner.parameters())
    assert all(p.grad is None for p in system.network.generator.decoder.parameters())


def test_the_untrained_attention_copies_the_latent_itself():
    attention = LatentContextualAttention(32)
    assert torch.equal(attention.proj.weight[:, :, 0, 0], torch.eye(32))


@pytest.mark.slow
def test_an_attention_model_with_a_pyramid_prefill_exports_to_onnx(tmp_path):
    from latentpaint.inference.export import export_onnx

    onnxruntime = pytest.importorskip("onnxruntime")
    net = attention_network()
    diff = export_onnx(net, tmp_path / "m.onnx")
    assert diff <= 1e-4
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    image, mask = striped(48)
    got = session.run(None, {"image": image.numpy(), "mask": mask.numpy()})[0]
    with torch.no_grad():
        expected = net.inpaint(image, mask).numpy()
    assert np.abs(got - expected).max() <= 1e-4


# -- inference: the Python API, the optimised path, HD crops, refinement ----------------------------------
def _photo_like(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = np.arange(w)[None, :, None]
    image = (128 + 90 * np.sin(x / 2.0) + rng.normal(0, 8, (h, w, 3))).clip(0, 255).astype(np.uint8)
    mask = np.zeros((h, w), np.float32)
    mask[h // 4 : h // 2, w // 3 : w // 2] = 1
    return image, mask


def test_an_fsr_attention_model_predicts_with_and_without_optimisation_and_in_hd_crops():
    from latentpaint.inference.hd import inpaint_hd
    from latentpaint.inference.inpainter import Inpainter

    net = attention_network(prefill="fsr")
    image, mask = _photo_like(60, 84)  # not a multiple of 4: padding, then the copy on the padded grid
    plain = Inpainter(net)(image, mask)
    fast = Inpainter(net, optimize=True)(image, mask)
    known = mask == 0
    assert np.array_equal(plain[known], image[known]) and np.array_equal(fast[known], image[known])
    assert np.abs(plain.astype(int) - fast.astype(int)).max() <= 2  # BN folding and channels-last
    big, big_mask = _photo_like(300, 420)
    sizes = []
    model = Inpainter(net)

    def recorded(image, mask):
        sizes.append(image.shape[:2])
        return model(image, mask)

    out = inpaint_hd(recorded, big, big_mask, "crop", crop_margin=16, crop_trigger_size=200)
    assert sizes and all(s[0] < 300 and s[1] < 420 for s in sizes)  # it ran on crops
    assert out.shape == big.shape and np.array_equal(out[big_mask == 0], big[big_mask == 0])


def test_refinement_of_an_attention_model_is_one_line():
    from latentpaint.inference.refine import refine_inpaint

    image, mask = striped()
    with pytest.raises(LatentpaintError, match="without --refine"):
        refine_inpaint(attention_network(), image, mask)
