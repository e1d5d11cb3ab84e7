"""ONNX (FFT as DFT, dynamic size) and TorchScript exports match PyTorch; safetensors via the CLI."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from latentpaint.cli import main
from latentpaint.errors import LatentpaintError
from latentpaint.inference import export
from latentpaint.inference.checkpoints import load_network, save_release
from latentpaint.inference.export import InpaintingGraph, export_onnx, export_torchscript
from latentpaint.models.network import InpaintingNetwork


@pytest.fixture(scope="module")
def network() -> InpaintingNetwork:
    """The thesis generator (ngf 8, 2 blocks for speed) with weights that make every branch matter."""
    torch.manual_seed(0)
    net = InpaintingNetwork("thesis", "alpha", n_blocks=2)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    with torch.no_grad():
        net.generator.model[-2].weight.mul_(20)  # spread the sigmoid output over (0, 1)
    return net.eval()


def _inputs(h: int, w: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, h, w, generator=g)
    mask = (torch.rand(1, 1, h, w, generator=g) > 0.5).float()
    return image, mask


@pytest.fixture(scope="module")
def onnx_file(network, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    assert export_onnx(network, path) <= 1e-4
    return path


@pytest.mark.slow
@pytest.mark.parametrize("size", [(256, 256), (512, 512), (120, 344), (37, 51)])
def test_onnx_matches_pytorch(network, onnx_file, size):
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    image, mask = _inputs(*size)
    out = session.run(["inpainted"], {"image": image.numpy(), "mask": mask.numpy()})[0]
    with torch.no_grad():
        expected = InpaintingGraph(network)(image, mask).numpy()
    assert out.shape == (1, 3, *size)
    assert np.abs(out - expected).max() <= 1e-4
    hole = mask.expand_as(image).numpy() > 0
    assert expected[hole].std() > 0.1  # the comparison is not trivial
    assert np.array_equal(out[~hole], image.numpy()[~hole])


@pytest.mark.slow
def test_onnx_graph_has_dft_and_dynamic_size(onnx_file):
    model = onnx.load(str(onnx_file))
    assert {n.op_type for n in model.graph.node} >= {"DFT"}
    assert [i.name for i in model.graph.input] == ["image", "mask"]
    assert [o.name for o in model.graph.output] == ["inpainted"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[2].dim_param and dims[3].dim_param and not dims[2].dim_value
    assert model.opset_import[0].version == 18


def test_onnx_opset_below_18_is_refused(network, tmp_path):
    with pytest.raises(LatentpaintError, match="opset 17"):
        export_onnx(network, tmp_path / "m.onnx", opset=17)


def test_torchscript_reloads_and_matches(network, tmp_path):
    path = tmp_path / "model.pt"
    assert export_torchscript(network, path) <= 1e-4
    with pytest.warns((FutureWarning, DeprecationWarning)):
        loaded = torch.jit.load(str(path))
    for size in [(256, 256), (72, 96)]:
        image, mask = _inputs(*size, seed=1)
        with torch.no_grad(), torch.jit.optimized_execution(False):
            assert (loaded(image, mask) - InpaintingGraph(network)(image, mask)).abs().max() <= 1e-4


def test_failed_parity_check_writes_nothing(network, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "PARITY_TOLERANCE", -1.0)
    with pytest.raises(LatentpaintError, match="differs from PyTorch"):
        export_torchscript(network, tmp_path / "model.pt")
    assert list(tmp_path.iterdir()) == []


def _export_cli(checkpoint, fmt, out, *extra) -> int:
    return main(["export", "--checkpoint", str(checkpoint), "--format", fmt, "--out", str(out), *extra])


def test_cli_export_safetensors_and_torchscript(network, tmp_path, capsys):
    save_release(network, tmp_path / "release")
    assert _export_cli(tmp_path / "release", "safetensors", tmp_path / "st") == 0
    reloaded = load_network(tmp_path / "st")
    assert all(torch.equal(v, reloaded.state_dict()[k]) for k, v in network.state_dict().items())
    (tmp_path / "ts").mkdir()
    assert _export_cli(tmp_path / "st", "torchscript", tmp_path / "ts") == 0
    assert (tmp_path / "ts" / "model.pt").is_file()
    assert _export_cli(tmp_path / "st", "onnx", tmp_path / "m.onnx", "--opset", "16") == 2
    assert "opset 16" in capsys.readouterr().err
