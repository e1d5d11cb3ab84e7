"""ONNX and TorchScript export, each verified against PyTorch before it is reported as written.

Both files compute what `Inpainter` does before rounding to uint8: mirror-pad the image and mask to a
multiple of 8, predict, keep the prediction inside the mask and the input elsewhere, crop back.
Inputs `image` (1, 3, H, W) float in [0, 1] and `mask` (1, 1, H, W) in {0, 1}; output `inpainted`
(1, 3, H, W); H and W are dynamic, at least 9 (smaller images would have 1-px latents, which the
FFC blocks' reflect padding cannot handle).

The FFT: torch 2.14's ONNX exporter (`dynamo=True`, onnxscript) lowers `rfftn` / `irfftn` and the
real<->complex views of `FourierUnit` to ONNX `DFT` ops on real tensors with a trailing (re, im) axis,
so the network exports unchanged; onnxruntime's DFT matches PyTorch's pocketfft to ~1e-7 on the
composited output. That exporter implements opset 18 and newer only. The legacy TorchScript-based
exporter has no FFT support and is not used.
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings
from pathlib import Path

import torch
from torch import nn

from latentpaint.errors import LatentpaintError
from latentpaint.inference.checkpoints import atomic_write

MIN_OPSET = 18
DEFAULT_OPSET = 18
PARITY_TOLERANCE = 1e-4
EXPORT_SIZE = (256, 256)
# a second, odd size checks that height and width really are dynamic
CHECK_SIZE = (200, 152)


# what each host prefill runs, for the refusal below (models/prefill.py HOST_PREFILLS)
HOST_FILL_NAMES = {"telea": "OpenCV's Telea fill", "fsr": "OpenCV contrib's FSR", "patchmatch":
                   "PatchMatch in Cython", "shiftmap": "OpenCV contrib's shift-map"}  # fmt: skip


def _pad_symmetric(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Bottom/right mirror padding including the edge (numpy 'symmetric'); traceable with dynamic sizes."""
    h, w = x.shape[-2:]
    x = torch.cat([x, x.flip(-2)[..., : (-h) % multiple, :]], dim=-2)
    return torch.cat([x, x.flip(-1)[..., : (-w) % multiple]], dim=-1)


class InpaintingGraph(nn.Module):
    """The exported computation: pad, predict, composite, crop (see the module docstring)."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network
        self.multiple = 2**network.generator.n_downsampling

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        image_p, mask_p = _pad_symmetric(image, self.multiple), _pad_symmetric(mask, self.multiple)
        return self.network.inpaint(image_p, mask_p)[..., :h, :w]


def _graph(network) -> InpaintingGraph:
    kind = getattr(network, "host_prefill", None)
    if kind is not None:  # models/prefill.py HOST_PREFILLS: OpenCV's and PatchMatch's fills
        raise LatentpaintError(
            f"this model prefills holes on the host (model.prefill {kind}: {HOST_FILL_NAMES[kind]}), which "
            "runs outside PyTorch and cannot be exported to ONNX or TorchScript; export a model trained "
            "with model.prefill none or pyramid"
        )
    return InpaintingGraph(copy.deepcopy(network).float().cpu().eval())


def _sample(size: tuple[int, int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, *size, generator=g)
    mask = torch.zeros(1, 1, *size)
    mask[..., size[0] // 4 : size[0] // 2, size[1] // 5 : 3 * size[1] // 4] = 1  # a box plus speckles
    mask = torch.maximum(mask, (torch.rand(1, 1, *size, generator=g) > 0.9).float())
    return image, mask


def check_parity(graph: InpaintingGraph, run, what: str, sizes=(EXPORT_SIZE, CHECK_SIZE)) -> float:
    """Max abs difference between `run(image, mask)` and PyTorch; raises above `PARITY_TOLERANCE`."""
    worst = 0.0
    for i, size in enumerate(sizes):
        image, mask = _sample(size, seed=i)
        with torch.no_grad():
            expected = graph(image, mask)
        diff = float((torch.as_tensor(run(image, mask)) - expected).abs().max())
        if not diff <= PARITY_TOLERANCE:
            raise LatentpaintError(
                f"the {what} export differs from PyTorch by {diff:.2e} at {size[1]}x{size[0]} "
                f"(tolerance {PARITY_TOLERANCE:.0e}); the file was not written"
            )
        worst = max(worst, diff)
    return worst


def export_onnx(network, path: str | Path, opset: int = DEFAULT_OPSET, size=EXPORT_SIZE) -> float:
    """Writes `network` as ONNX to `path` (dynamic H, W), checks it with onnxruntime; returns the max diff."""
    if opset < MIN_OPSET:
        raise LatentpaintError(
            f"ONNX opset {opset} is too old: torch {torch.__version__.split('+')[0]}'s exporter writes opset "
            f"{MIN_OPSET} or newer"
        )
    try:
        import onnxruntime as ort
        import onnxscript  # noqa: F401 - the exporter needs it
    except ModuleNotFoundError as exc:
        raise LatentpaintError(f"ONNX export needs {exc.name}: pip install 'latentpaint[export]'") from None
    graph = _graph(network)
    image, mask = _sample(size)
    height, width = torch.export.Dim("height", min=9), torch.export.Dim("width", min=9)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            graph, (image, mask), input_names=["image", "mask"], output_names=["inpainted"],
            opset_version=opset, dynamo=True, external_data=False, verbose=False,
            dynamic_shapes={"image": {2: height, 3: width}, "mask": {2: height, 3: width}},
        )  # fmt: skip
    model_bytes = program.model_proto.SerializeToString()
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    diff = check_parity(
        graph, lambda i, m: session.run(None, {"image": i.numpy(), "mask": m.numpy()})[0], "ONNX"
    )
    atomic_write(Path(path), lambda p: p.write_bytes(model_bytes))
    return diff


def export_torchscript(network, path: str | Path, size=EXPORT_SIZE) -> float:
    """Writes `network` as a traced TorchScript program, reloads it and checks it; returns the max diff."""
    graph = _graph(network)
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in torch 2.x but still loads everywhere
        traced = torch.jit.trace(graph, _sample(size), check_trace=False)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
        buffer.seek(0)
        reloaded = torch.jit.load(buffer, map_location="cpu")
    # the profiling executor would spend seconds optimising for each new size; parity needs no speed
    with torch.no_grad(), torch.jit.optimized_execution(False):
        diff = check_parity(graph, reloaded, "TorchScript")
    atomic_write(path, lambda p: p.write_bytes(buffer.getvalue()))
    return diff
