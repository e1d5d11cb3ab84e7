"""The backbone of LaMa's ResNet-PL: MIT CSAIL's ADE20k-trained dilated ResNet-50 encoder.

LaMa's perceptual loss (`resnet_pl`, weight 30) runs the encoder of the semantic-segmentation model
`ade20k-resnet50dilated-ppm` (file `encoder_epoch_20.pth`) and sums the MSE of its four stages. That
encoder is a ResNet-50 with a deep stem (three 3x3 convs: 3->64 stride 2, 64->64, 64->128, then max-pool)
whose layer3 and layer4 trade their stride for dilation 2 and 4 (output stride 8). The module below has
exactly its state-dict keys (conv1/bn1 .. conv3/bn3, layer1..layer4), so the file loads as it is.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck

from latentpaint.errors import LatentpaintError, quoted

ADE20K_BACKBONE = "ade20k-resnet50dilated"  # the loss.perceptual_backbone value
ADE20K_FILE = "encoder_epoch_20.pth"
ADE20K_SUBDIR = Path("ade20k") / "ade20k-resnet50dilated-ppm"  # LaMa's layout under its weights folder
ADE20K_URL = "http://sceneparsing.csail.mit.edu/model/pytorch/ade20k-resnet50dilated-ppm/encoder_epoch_20.pth"


class DilatedResNet(nn.Module):
    """MIT's `ResnetDilated(resnet50, dilate_scale=8)`; `width`/`blocks` shrink it for tests (64, (3, 4, 6, 3))."""

    def __init__(self, width: int = 64, blocks: tuple[int, ...] = (3, 4, 6, 3)):
        super().__init__()

        def conv_bn(name: int, cin: int, cout: int, stride: int) -> None:
            setattr(self, f"conv{name}", nn.Conv2d(cin, cout, 3, stride, 1, bias=False))
            setattr(self, f"bn{name}", nn.BatchNorm2d(cout))

        conv_bn(1, 3, width, 2)
        conv_bn(2, width, width, 1)
        conv_bn(3, width, 2 * width, 1)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.inplanes = 2 * width  # the deep stem ends with 128 channels, not ResNet's 64
        # (stride, dilation of the first block, dilation of the others): MIT's _nostride_dilate turns
        # layer3's and layer4's stride-2 into dilation, the first block keeping the previous dilation
        plan = ((1, 1, 1), (2, 1, 1), (1, 1, 2), (1, 2, 4))
        for i, (n, (stride, first, rest)) in enumerate(zip(blocks, plan, strict=True)):
            setattr(self, f"layer{i + 1}", self._layer(width * 2**i, n, stride, first, rest))

    def _layer(self, planes: int, n: int, stride: int, first: int, rest: int) -> nn.Sequential:
        out = planes * Bottleneck.expansion
        downsample = nn.Sequential(nn.Conv2d(self.inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out))
        layers = [Bottleneck(self.inplanes, planes, stride, downsample, dilation=first)]
        layers += [Bottleneck(out, planes, dilation=rest) for _ in range(n - 1)]
        self.inplanes = out
        return nn.Sequential(*layers)

    def stem(self) -> nn.Sequential:
        """conv-bn-relu x 3 and the max-pool, in MIT's order."""
        parts: list[nn.Module] = []
        for i in (1, 2, 3):
            parts += [getattr(self, f"conv{i}"), getattr(self, f"bn{i}"), self.relu]
        return nn.Sequential(*parts, self.maxpool)

    def stages(self) -> list[nn.Module]:
        """The four modules whose outputs ResNet-PL compares: stem + layer1, layer2, layer3, layer4."""
        return [nn.Sequential(self.stem(), self.layer1), self.layer2, self.layer3, self.layer4]


def find_ade20k_weights(where: str | Path | None) -> Path:
    """`encoder_epoch_20.pth` from a file path, or a folder in LaMa's layout (or holding the file itself).

    None looks in $TORCH_HOME, where LaMa's configs point (`weights_path: ${env:TORCH_HOME}`).
    """
    if where is None:
        where = Path(torch.hub.get_dir()).parent
    where = Path(where)
    candidates = [where] if where.is_file() else [where / ADE20K_SUBDIR / ADE20K_FILE, where / ADE20K_FILE]
    for path in candidates:
        if path.is_file():
            return path
    folder = where.parent if where.suffix == ".pth" else where
    raise LatentpaintError(
        f"LaMa's ResNet-PL needs {ADE20K_FILE}, not found at {where}: download {ADE20K_URL} into "
        f"{folder / ADE20K_SUBDIR}/ (or set loss.perceptual_backbone=resnet50 for the ImageNet fallback, "
        "or loss.perceptual=0)"
    )


def read_ade20k_state(path: Path, model: DilatedResNet) -> dict[str, torch.Tensor]:
    """The encoder weights of `path`, keys matched to `model`: any prefix (module., encoder., ...) is
    stripped; BatchNorm counters that older files lack are filled in; a classifier head is ignored."""
    from latentpaint.storage.torchfile import load_torch_file

    state = load_torch_file(path)
    for wrapper in ("state_dict", "model"):  # a whole training checkpoint instead of a bare state dict
        if isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    stems = [k for k in state if k.endswith("conv1.weight") and "layer" not in k]
    prefix = min(stems, key=len)[: -len("conv1.weight")] if stems else ""
    state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    own = model.state_dict()
    hint = f"download {ADE20K_URL} (LaMa's ADE20k encoder) and put it at WEIGHTS_DIR/{ADE20K_SUBDIR}/{ADE20K_FILE}"
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or wrong:
        first = (missing or wrong)[0]
        raise LatentpaintError(
            f"{quoted(path)} is not the ADE20k ResNet-50 dilated encoder ({len(missing)} weights missing, "
            f"{len(wrong)} of another shape, e.g. {first}): {hint}"
        )
    return {k: state.get(k, own[k]) for k in own}


def ade20k_resnet50_dilated(
    weights: str | Path | None, width: int = 64, blocks: tuple[int, ...] = (3, 4, 6, 3)
) -> tuple[DilatedResNet, Path | None]:
    """(backbone, file it came from); weights 'random' leaves it untrained (smoke tests only)."""
    model = DilatedResNet(width, blocks)
    if weights == "random":
        return model, None
    path = find_ade20k_weights(weights)
    model.load_state_dict(read_ade20k_state(path, model))
    return model, path
