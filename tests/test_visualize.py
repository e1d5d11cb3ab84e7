"""`latentpaint visualize`: figure 4.4 from a stage-1 and from a stage-2 checkpoint."""

import numpy as np
import pytest
from PIL import Image

from latentpaint.cli import main
from latentpaint.training.runner import train


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tiny):
    root = tmp_path_factory.mktemp("viz")
    ae = train(tiny.config("autoencoder", "trainer.max_steps=1", size=32), root / "ae")
    lc = train(
        tiny.config("latent-control", "trainer.max_steps=1", f"autoencoder={ae}", size=32), root / "lc"
    )
    return ae, lc


@pytest.fixture
def image_and_mask(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)).save(tmp_path / "x.png")
    mask = np.zeros((40, 52), np.uint8)
    mask[10:25, 15:40] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    return tmp_path / "x.png", tmp_path / "m.png"


@pytest.mark.parametrize("stage", [0, 1])
def test_visualize_writes_a_figure(checkpoints, image_and_mask, tmp_path, capsys, stage):
    image, mask = image_and_mask
    out = tmp_path / "fig.png"
    code = main(
        [
            "visualize",
            "--checkpoint",
            str(checkpoints[stage]),
            "--image",
            str(image),
            "--mask",
            str(mask),
            "--out",
            str(out),
        ]
    )
    assert code == 0 and out.is_file()
    figure = Image.open(out)
    figure.load()
    # stage 2 adds the refiner's latent repair and the inpainted image: a wider figure
    assert figure.width > 300
    assert "wrote" in capsys.readouterr().out


def test_visualize_mask_of_another_size_is_one_line(checkpoints, image_and_mask, tmp_path, capsys):
    image, _ = image_and_mask
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "small.png")
    code = main(
        [
            "visualize",
            "--checkpoint",
            str(checkpoints[0]),
            "--image",
            str(image),
            "--mask",
            str(tmp_path / "small.png"),
            "--out",
            str(tmp_path / "f.png"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "small.png" in err[0]
    assert not (tmp_path / "f.png").exists()
