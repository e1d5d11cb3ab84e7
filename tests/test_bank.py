"""Prefill banks (data/bank.py): crops, masks and host prefills drawn once, then read by training steps."""

import numpy as np
import pytest
import torch

from latentpaint.cli import main
from latentpaint.data.bank import PrefillBank, build_bank, read_bank
from latentpaint.data.datamodule import InpaintingDataModule
from latentpaint.data.datasets import TrainingDataset
from latentpaint.errors import LatentpaintError


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    path = tmp_path_factory.mktemp("bank") / "telea32.npz"
    report = build_bank("builtin", path, 32, 6, "wide", "telea", seed=3)
    assert report["samples"] == 6 and path.is_file()
    return path


def test_a_bank_holds_the_samples_and_prefills_a_run_would_draw(bank):
    arrays, facts = read_bank(bank)
    assert facts == {"size": 32, "mask_preset": "wide", "prefill": "telea"}
    live = TrainingDataset("builtin", 32, "wide", 3, prefill="telea", uint8=True)
    for i in range(6):
        item = live[i]
        assert np.array_equal(arrays["images"][i], item["image"].permute(1, 2, 0).numpy())
        assert np.array_equal(arrays["masks"][i], item["mask"][0].numpy())
        assert np.array_equal(arrays["prefills"][i], item["prefill"].permute(1, 2, 0).numpy())


def test_bank_items_are_bank_samples_flipped_at_random_and_every_sample_comes_once_per_pass(bank):
    arrays, _ = read_bank(bank)
    data = PrefillBank(bank, 32, "wide", "telea", seed=1, length=12)
    seen, flipped = [], 0
    for index in range(6):
        item = data[index]
        image = item["image"].permute(1, 2, 0).numpy()
        matches = [i for i in range(6) if np.array_equal(arrays["images"][i], image)]
        mirrors = [i for i in range(6) if np.array_equal(arrays["images"][i][:, ::-1], image)]
        source = (matches or mirrors)[0]
        flipped += not matches
        seen.append(source)
        mask = arrays["masks"][source] if matches else arrays["masks"][source][:, ::-1]
        assert np.array_equal(item["mask"][0].numpy(), mask) and item["prefill"].dtype == torch.uint8
    assert sorted(seen) == list(range(6)) and 0 < flipped < 6
    assert len(data) == 12


@pytest.mark.parametrize(
    "asked, key",
    [
        ((64, "wide", "telea"), "data.size"),
        ((32, "thick_256", "telea"), "data.mask_preset"),
        ((32, "wide", "fsr"), "model.prefill"),
    ],  # fmt: skip
)
def test_a_bank_drawn_for_another_run_is_refused_in_one_line(bank, asked, key):
    with pytest.raises(LatentpaintError, match=key) as info:
        PrefillBank(bank, *asked)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("content", [b"not a zip", None])
def test_a_damaged_or_foreign_npz_is_one_line(tmp_path, content):
    path = tmp_path / "bad.npz"
    if content is None:
        np.savez(path, images=np.zeros((1, 8, 8, 3), np.uint8))
    else:
        path.write_bytes(content)
    with pytest.raises(LatentpaintError, match="bad.npz") as info:
        read_bank(path)
    assert "\n" not in str(info.value)


def test_the_datamodule_trains_from_a_bank_named_as_data_train(bank):
    module = InpaintingDataModule(str(bank), 32, 2, 0, "wide", seed=0, max_steps=2, prefill="telea")
    batch = next(iter(module.train_dataloader()))
    assert isinstance(module.dataset, PrefillBank)
    assert batch["image"].shape == (2, 3, 32, 32) and batch["prefill"].shape == (2, 3, 32, 32)


def test_cli_data_bank_writes_once_and_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "b.npz"
    argv = [
        "data",
        "bank",
        "--prefill",
        "telea",
        "--size",
        "32",
        "--count",
        "3",
        "--workers",
        "0",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    assert "wrote 3 samples" in capsys.readouterr().out and read_bank(out)[1]["size"] == 32
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv[:-1], str(tmp_path / "b.bin")]) == 2
    assert ".npz" in capsys.readouterr().err


def test_cli_data_bank_never_replaces_what_is_not_a_regular_file(tmp_path, capsys):
    argv = ["data", "bank", "--prefill", "telea", "--size", "32", "--count", "2", "--workers", "0"]
    (tmp_path / "folder.npz").mkdir()
    assert main([*argv, "--out", str(tmp_path / "folder.npz"), "--overwrite"]) == 2
    assert "folder" in capsys.readouterr().err
    assert main([*argv, "--images", str(tmp_path / "missing"), "--out", str(tmp_path / "x.npz")]) == 2
    assert "--images" in capsys.readouterr().err and not (tmp_path / "x.npz").exists()
