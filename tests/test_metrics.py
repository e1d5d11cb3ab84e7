import os

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.metrics import structural_similarity

from latentpaint.errors import LatentpaintError
from latentpaint.inference.classical import opencv_inpaint
from latentpaint.metrics import bins
from latentpaint.metrics.fid import (
    PYTORCH_FID_FILE,
    PYTORCH_FID_URL,
    FidHelperInception,
    PytorchFidInception,
    StandInFeatures,
    _inception_input,
    create_fid_feature,
    frechet_distance,
)
from latentpaint.metrics.suite import VGG16_FILE, MetricSuite, create_lpips, psnr, ssim
from latentpaint.metrics.weight_files import find_weight_file, hub_checkpoints_dir


def _pair(n: int = 2, h: int = 40, w: int = 48, noise: float = 0.1, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    # smooth-ish content so SSIM is not dominated by white noise
    target = torch.nn.functional.avg_pool2d(torch.rand(n, 3, h + 4, w + 4, generator=g), 5, stride=1)
    pred = (target + noise * torch.randn(target.shape, generator=g)).clamp(0, 1)
    return pred, target


def _reference_ssim_zero_padded(pred: np.ndarray, target: np.ndarray) -> float:
    """SSIM with an 11x11 sigma-1.5 Gaussian, zero padding, mean over channels and pixels (float64)."""
    x = np.arange(11) - 5
    g = np.exp(-(x**2) / (2 * 1.5**2))
    g /= g.sum()
    window = np.outer(g, g)

    def filt(a: np.ndarray) -> np.ndarray:
        return ndimage.correlate(a, window, mode="constant", cval=0.0)

    maps = []
    for p, t in zip(pred, target):  # channels
        mp, mt = filt(p), filt(t)
        vp, vt, cov = filt(p * p) - mp**2, filt(t * t) - mt**2, filt(p * t) - mp * mt
        c1, c2 = 0.01**2, 0.03**2
        maps.append(((2 * mp * mt + c1) * (2 * cov + c2)) / ((mp**2 + mt**2 + c1) * (vp + vt + c2)))
    return float(np.mean(maps))


@pytest.mark.parametrize("convention", ["lama", "skimage"])
def test_ssim_is_one_for_identical_images_and_drops_with_noise(convention):
    _, target = _pair()
    assert torch.allclose(ssim(target, target, convention), torch.ones(2), atol=1e-5)
    scores = [ssim(_pair(noise=s)[0], target, convention).mean().item() for s in (0.02, 0.1, 0.3)]
    assert 1 > scores[0] > scores[1] > scores[2]


@pytest.mark.parametrize("size", [(40, 48), (23, 31)])
def test_lama_ssim_matches_zero_padded_reference(size):
    pred, target = _pair(h=size[0], w=size[1])
    ours = ssim(pred, target, "lama")
    assert ours.shape == (2,)
    for i in range(2):
        reference = _reference_ssim_zero_padded(pred[i].double().numpy(), target[i].double().numpy())
        assert abs(ours[i].item() - reference) < 1e-4


@pytest.mark.parametrize("size", [(40, 48), (23, 31)])
def test_skimage_ssim_matches_scikit_image(size):
    pred, target = _pair(h=size[0], w=size[1])
    ours = ssim(pred, target, "skimage")
    for i in range(2):
        reference = structural_similarity(
            pred[i].permute(1, 2, 0).double().numpy(),
            target[i].permute(1, 2, 0).double().numpy(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=-1,
        )
        assert abs(ours[i].item() - reference) < 1e-4


def test_ssim_conventions_differ_and_unknown_convention_is_an_error():
    pred, target = _pair()
    assert not torch.allclose(ssim(pred, target, "lama"), ssim(pred, target, "skimage"), atol=1e-3)
    with pytest.raises(LatentpaintError, match="SSIM convention"):
        ssim(pred, target, "matlab")


def test_psnr_against_hand_computed_values():
    target = torch.zeros(2, 3, 4, 4)
    pred = target.clone()
    pred[0] += 0.1  # MSE 0.01 -> 20 dB
    pred[1, :, :2] = 0.5  # half the pixels off by 0.5: MSE 0.125 -> 10 log10(8)
    assert torch.allclose(psnr(pred, target), torch.tensor([20.0, 10 * float(np.log10(8.0))]), atol=1e-4)
    assert psnr(target, target).tolist() == pytest.approx([100.0, 100.0])  # floored MSE, not infinity


def test_area_bins_follow_lama_edges():
    assert bins.BIN_LABELS == tuple(f"{10 * i}-{10 * i + 10}%" for i in range(10))
    cases = {0.0: "0-10%", 0.05: "0-10%", 0.1: "10-20%", 0.2999: "20-30%", 0.5: "50-60%", 0.99: "90-100%"}
    cases[1.0] = "90-100%"  # LaMa's corner case: a full mask joins the last bin
    for area, label in cases.items():
        assert bins.area_bin(area) == label
    groups = bins.group_by_bin(np.array([0.55, 0.02, 0.51, 1.0]))
    assert list(groups) == ["0-10%", "50-60%", "90-100%"]
    assert groups["50-60%"].tolist() == [0, 2]


def test_integral_scores_follow_lama_formula():
    assert bins.ssim_fid100_f1(0.8, 20.0) == pytest.approx(2 * 0.8 * 0.8 / (1.6 + 1e-3))
    assert bins.lpips_fid100_f1(0.25, 50.0) == pytest.approx(2 * 0.75 * 0.5 / (1.25 + 1e-3))
    assert bins.ssim_fid100_f1(0.9, 150.0) == 0.0  # FID above 100 clamps the FID part to 0


def test_suite_bins_each_image_by_mask_area():
    n, size = 6, 20
    pred, target = _pair(n=n, h=size, w=size)
    areas = [0.0, 0.05, 0.15, 0.15, 0.45, 1.0]
    masks = torch.zeros(n, 1, size, size)
    for i, area in enumerate(areas):
        masks[i].view(-1)[: round(area * size * size)] = 1
    suite = MetricSuite(("ssim", "psnr"))
    suite.update(pred[:4], target[:4], masks[:4])
    suite.update(pred[4:], target[4:], masks[4:, 0])  # (N, H, W) masks work too
    result = suite.compute()
    assert result["count"] == n and result["ssim_convention"] == "lama"
    assert {k: v["count"] for k, v in result["bins"].items()} == {
        "0-10%": 2,
        "10-20%": 2,
        "40-50%": 1,
        "90-100%": 1,
    }
    per_image = ssim(pred, target).double()
    assert result["total"]["ssim"] == pytest.approx(per_image.mean().item(), abs=1e-6)
    assert result["bins"]["10-20%"]["ssim"] == pytest.approx(per_image[2:4].mean().item(), abs=1e-6)
    assert "fid" not in result["total"] and result["errors"] == {}


def test_fid_of_a_set_against_itself_is_zero_and_grows_with_distortion():
    _, target = _pair(n=24, h=32, w=32, seed=1)
    feature = StandInFeatures()
    with torch.no_grad():
        real = feature(target)
        assert frechet_distance(real, real) == pytest.approx(0.0, abs=1e-6)
        fids = [
            frechet_distance(real, feature(_pair(n=24, h=32, w=32, noise=s, seed=1)[0]))
            for s in (0.05, 0.15, 0.4)
        ]
    assert 0 < fids[0] < fids[1] < fids[2]


def test_suite_reports_fid_per_bin_and_integral_scores():
    pred, target = _pair(n=5, h=24, w=24)
    masks = torch.zeros(5, 1, 24, 24)
    masks[:4, :, :6] = 1  # 25% -> bin 20-30%; the last image stays alone in 0-10%
    suite = MetricSuite(("ssim", "fid"), fid_feature=StandInFeatures())
    suite.update(pred, target, masks)
    result = suite.compute()
    assert result["bins"]["0-10%"]["fid"] is None  # one image: no covariance
    assert result["bins"]["20-30%"]["fid"] >= 0
    total = result["total"]
    assert total["ssim_fid100_f1"] == pytest.approx(bins.ssim_fid100_f1(total["ssim"], total["fid"]))
    assert "lpips_fid100_f1" not in total
    assert "stand-in" in result["metrics"]["fid"]


def test_missing_lpips_weights_is_one_sentence_and_spares_other_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # an empty hub cache
    with pytest.raises(LatentpaintError) as info:
        create_lpips(tmp_path)
    message = str(info.value)
    assert VGG16_FILE in message and str(tmp_path) in message and "\n" not in message
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in message

    suite = MetricSuite(("psnr", "lpips"), weights_dir=tmp_path)
    assert suite.metrics == ("psnr",) and VGG16_FILE in suite.errors["lpips"]
    pred, target = _pair()
    suite.update(pred, target, torch.zeros(2, 1, 40, 48))
    result = suite.compute()
    assert "psnr" in result["total"] and "lpips" not in result["total"] and "lpips" in result["errors"]


def test_missing_pytorch_fid_weights_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    suite = MetricSuite(("fid",), weights_dir=tmp_path, fid_feature="pytorch-fid")
    assert PYTORCH_FID_FILE in suite.errors["fid"] and PYTORCH_FID_URL in suite.errors["fid"]


@pytest.fixture(scope="module")
def fid_helper():
    return FidHelperInception()


def test_fid_helper_extractor_gives_2048_finite_features(fid_helper):
    images = torch.rand(2, 3, 48, 64)  # resized to 299 inside
    with torch.no_grad():
        features = fid_helper(images)
    assert features.shape == (2, 2048) and torch.isfinite(features).all()


def test_inception_input_takes_uint8_or_unit_floats():
    levels = torch.randint(0, 256, (1, 3, 299, 299), dtype=torch.uint8)
    assert torch.equal(_inception_input(levels), levels.float() / 255)
    assert _inception_input(torch.rand(2, 3, 40, 50) * 2 - 0.5).shape == (2, 3, 299, 299)
    assert _inception_input(torch.full((1, 3, 8, 8), 2.0)).max() == 1.0  # clipped to [0, 1]


def test_fid_helper_network_is_torch_fidelitys_inception(fid_helper, monkeypatch, tmp_path):
    """default_1.pt's weights, saved in pytorch-fid's layout and loaded by PytorchFidInception, give equal features.

    So the two extractors are the same network; whether pytorch-fid's real file holds the same weights is
    checked by the next test when that file is available.
    """
    tfi = pytest.importorskip(
        "torch_fidelity.feature_extractor_inceptionv3", reason="torch-fidelity not installed"
    )
    # build torch-fidelity's network without its weights (which it would download)
    monkeypatch.setattr(tfi, "load_state_dict_from_url", lambda *a, **k: None)
    monkeypatch.setattr(tfi.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
    empty = tfi.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    monkeypatch.undo()
    ours = [m for m in fid_helper.net.modules() if getattr(m, "original_name", "") == "Conv2dLayer"]
    convs = [n for n, m in empty.named_modules() if type(m).__name__ == "BasicConv2d"]
    assert len(ours) == len(convs) == 94
    state = empty.state_dict()
    for layer, name in zip(ours, convs):
        assert layer.weight.shape == state[f"{name}.conv.weight"].shape, name
        state[f"{name}.conv.weight"] = layer.weight
        state[f"{name}.bn.weight"] = torch.ones_like(layer.beta)  # TF's batch norm has no scale
        state[f"{name}.bn.bias"] = layer.beta
        state[f"{name}.bn.running_mean"] = layer.mean
        state[f"{name}.bn.running_var"] = layer.var
    torch.save(state, tmp_path / PYTORCH_FID_FILE)
    reference = create_fid_feature("pytorch-fid", tmp_path)
    assert isinstance(reference, PytorchFidInception)
    images = torch.randint(0, 256, (1, 3, 299, 299), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.allclose(reference(images), fid_helper(images), atol=1e-3)


def test_pytorch_fid_weights_give_the_same_features_as_fid_helper(fid_helper):
    weights_dir = os.environ.get("LATENTPAINT_WEIGHTS_DIR")
    path = find_weight_file(PYTORCH_FID_FILE, weights_dir)
    if path is None:
        pytest.skip(
            f"{PYTORCH_FID_FILE} is in neither $LATENTPAINT_WEIGHTS_DIR ({weights_dir}) nor {hub_checkpoints_dir()}; "
            f"download it from {PYTORCH_FID_URL} to run this check"
        )
    reference = PytorchFidInception(path)
    # 299x299 uint8 images: no resizing and no rounding on either side, only the networks differ
    images = torch.randint(0, 256, (3, 3, 299, 299), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.allclose(reference(images), fid_helper(images), atol=1e-3)


def test_opencv_inpaint_fills_only_the_hole():
    image = np.full((32, 40, 3), (200, 100, 50), dtype=np.uint8)
    image[:, 20:] = (10, 20, 30)
    mask = np.zeros((32, 40), dtype=np.float32)
    mask[8:16, 4:12] = 1  # inside the flat left half
    image_with_hole = image.copy()
    image_with_hole[mask > 0] = 255
    for method in ("telea", "ns"):
        out = opencv_inpaint(image_with_hole, mask, method=method)
        assert out.dtype == np.uint8 and out.shape == image.shape
        assert (out[mask == 0] == image_with_hole[mask == 0]).all()
        assert np.abs(out[mask > 0].astype(int) - (200, 100, 50)).max() <= 2
    with pytest.raises(LatentpaintError, match="method"):
        opencv_inpaint(image, mask, method="patchmatch")
    with pytest.raises(LatentpaintError, match="must be the same size"):
        opencv_inpaint(image, mask[:10])
