import io
import warnings

import cv2
import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image, ImageFile
from torch.utils.data import DataLoader

from latentpaint.data import (
    EvaluationDataset,
    InpaintingDataModule,
    StepSampler,
    TrainingDataset,
    builtin_photos,
    find_pairs,
    list_images,
    load_mask,
    load_rgb,
    save_image,
)
from latentpaint.errors import LatentpaintError


def noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


# -- images.py ----------------------------------------------------------------------------------------


def test_load_rgb_converts_every_colour_mode(tmp_path):
    rgb = noise(12, 16)
    cases = {
        "grey.png": Image.fromarray(rgb[..., 0]),
        "grey_alpha.png": Image.fromarray(rgb[..., 0]).convert("LA"),
        "rgba.png": Image.fromarray(np.dstack([rgb, rgb[..., :1]]), "RGBA"),
        "palette.png": Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16),
        "cmyk.jpg": Image.fromarray(rgb).convert("CMYK"),
        "bilevel.png": Image.fromarray(rgb[..., 0] > 127),
        "colour.webp": Image.fromarray(rgb),
        "colour.tif": Image.fromarray(rgb),
        "colour.bmp": Image.fromarray(rgb),
    }
    for name, image in cases.items():
        image.save(tmp_path / name)
        out = load_rgb(tmp_path / name)
        assert out.dtype == np.uint8 and out.shape == (12, 16, 3), name
    assert np.array_equal(load_rgb(tmp_path / "grey.png"), np.repeat(rgb[..., :1], 3, axis=2))
    assert np.array_equal(load_rgb(tmp_path / "rgba.png"), rgb)  # alpha dropped, colours untouched
    assert np.array_equal(load_rgb(tmp_path / "colour.tif"), rgb)


def test_load_rgb_16_bit_keeps_the_high_byte(tmp_path):
    grey = (np.arange(12 * 16).reshape(12, 16) * 300).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "grey16.png"), grey)
    assert np.array_equal(load_rgb(tmp_path / "grey16.png")[..., 0], (grey >> 8).astype(np.uint8))
    bgr = np.dstack([grey, grey // 2, grey // 3])
    cv2.imwrite(str(tmp_path / "rgb16.png"), bgr)
    assert np.array_equal(load_rgb(tmp_path / "rgb16.png"), (bgr[..., ::-1] >> 8).astype(np.uint8))


def test_load_rgb_applies_exif_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    Image.fromarray(noise(10, 20)).save(tmp_path / "rotated.jpg", exif=exif)
    assert load_rgb(tmp_path / "rotated.jpg").shape == (20, 10, 3)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_images_raise(tmp_path, fmt):
    data = encoded(Image.fromarray(noise(64, 64)), fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    with pytest.raises(LatentpaintError, match=f"cannot read image .*cut.{fmt.lower()}"):
        load_rgb(path)


def test_unreadable_files_raise_one_clear_error(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("hello")
    for name in ("empty.png", "text.jpg", "missing.png"):
        with pytest.raises(LatentpaintError, match=f"cannot read image .*{name}") as info:
            load_rgb(tmp_path / name)
        assert "\n" not in str(info.value)


def test_pixel_limit_is_checked_before_decoding(tmp_path):
    Image.fromarray(noise(20, 20)).save(tmp_path / "big.png")
    with pytest.raises(LatentpaintError, match="limit"):
        load_rgb(tmp_path / "big.png", max_pixels=399)
    assert load_rgb(tmp_path / "big.png", max_pixels=400).shape == (20, 20, 3)


def test_load_mask_any_nonzero_level_is_fill(tmp_path):
    levels = np.array([[0, 1, 128, 255]], np.uint8)
    Image.fromarray(levels).save(tmp_path / "grey.png")
    expected = np.array([[0, 1, 1, 1]], np.float32)
    assert np.array_equal(load_mask(tmp_path / "grey.png"), expected)
    cv2.imwrite(str(tmp_path / "deep.png"), levels.astype(np.uint16))  # level 1 of 65535 still counts
    assert np.array_equal(load_mask(tmp_path / "deep.png"), expected)
    colour = np.zeros((1, 4, 4), np.uint8)
    colour[0, 1:, 0] = 1  # only the red channel set; alpha opaque everywhere
    colour[..., 3] = 255
    Image.fromarray(colour, "RGBA").save(tmp_path / "rgba.png")
    assert np.array_equal(load_mask(tmp_path / "rgba.png"), expected)


def test_list_images_is_recursive_sorted_and_filters_extensions(tmp_path):
    (tmp_path / "b").mkdir()
    for name in ("b/z.PNG", "a.jpg", "c.webp", "notes.txt", ".hidden.png"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == [
        "a.jpg",
        "b/z.PNG",
        "c.webp",
    ]
    with pytest.raises(LatentpaintError, match="does not exist"):
        list_images(tmp_path / "nope")


def test_save_image_round_trips_without_temp_files(tmp_path):
    rgb = noise(8, 9)
    save_image(tmp_path / "x.png", rgb)
    save_image(tmp_path / "m.png", (rgb[..., 0] > 127).astype(np.uint8) * 255)
    assert np.array_equal(load_rgb(tmp_path / "x.png"), rgb)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.png", "x.png"]
    with pytest.raises(LatentpaintError):
        save_image(tmp_path / "f.png", rgb.astype(np.float32))


def test_builtin_photos_are_nine_rgb_photos():
    photos = builtin_photos()
    assert len(photos) == 9
    assert len({name for name, _ in photos}) == 9
    for _, image in photos:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert min(image.shape[:2]) >= 256


# -- TrainingDataset ----------------------------------------------------------------------------------

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]


@pytest.fixture
def solid_folder(tmp_path):
    """Five solid-colour images of assorted sizes (one of them 1x1), so a crop's colour names its image."""
    folder = tmp_path / "train"
    (folder / "deeper").mkdir(parents=True)
    sizes = [(1, 1), (40, 70), (300, 200), (33, 33), (64, 48)]
    for i, (colour, (h, w)) in enumerate(zip(COLOURS, sizes, strict=True)):
        sub = "deeper/" if i == 2 else ""
        Image.fromarray(np.full((h, w, 3), colour, np.uint8)).save(folder / f"{sub}{i}.png")
    return folder


def colour_of(image: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(round(v * 255)) for v in image[:, 0, 0].tolist())


def test_training_items_have_the_right_shape_and_range(solid_folder):
    data = TrainingDataset(solid_folder, size=32, mask_preset="wide", seed=0)
    assert len(data) == 5
    for i in (0, 3, 17, 1000):  # any non-negative index is valid
        item = data[i]
        assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
        assert item["mask"].shape == (1, 32, 32) and item["mask"].dtype == torch.float32
        assert 0 <= item["image"].min() and item["image"].max() <= 1
        assert set(item["mask"].unique().tolist()) <= {0.0, 1.0} and item["mask"].sum() > 0
    # the 1x1 image was upscaled and the 300x200 one shrunk to a short side of 2 * size
    assert sorted(min(image.shape[:2]) for image in data._cache) == [32, 33, 40, 48, 64]


def test_each_epoch_visits_every_image_once(solid_folder):
    data = TrainingDataset(solid_folder, size=16, seed=3, length=100)
    epochs = [[colour_of(data[e * 5 + k]["image"]) for k in range(5)] for e in range(3)]
    for epoch in epochs:
        assert sorted(epoch) == sorted(COLOURS)
    assert epochs[0] != epochs[1] or epochs[1] != epochs[2]  # a fresh permutation per epoch


def test_training_items_are_deterministic(solid_folder):
    a = TrainingDataset(solid_folder, size=32, seed=5)
    b = TrainingDataset(solid_folder, size=32, seed=5, cache=False)
    c = TrainingDataset(solid_folder, size=32, seed=6)
    for i in (0, 7, 12):
        assert torch.equal(a[i]["image"], b[i]["image"]) and torch.equal(a[i]["mask"], b[i]["mask"])
    assert any(not torch.equal(a[i]["mask"], c[i]["mask"]) for i in range(5))
    # item order does not matter
    forward = [a[i]["mask"] for i in range(6)]
    backward = [a[i]["mask"] for i in reversed(range(6))][::-1]
    assert all(torch.equal(x, y) for x, y in zip(forward, backward, strict=True))


def test_worker_count_does_not_change_batches(solid_folder):
    data = TrainingDataset(solid_folder, size=32, seed=1)

    def batches(workers: int) -> list[dict]:
        loader = DataLoader(data, batch_size=4, sampler=StepSampler(12, 4), num_workers=workers)
        return list(loader)

    for x, y in zip(batches(0), batches(2), strict=True):
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["mask"], y["mask"])


def test_unreadable_images_are_skipped_with_one_warning(solid_folder):
    (solid_folder / "empty.png").write_bytes(b"")
    data = encoded(Image.fromarray(noise(64, 64)), "PNG")
    (solid_folder / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="skipped 2 unreadable of 7 images") as record:
        dataset = TrainingDataset(solid_folder, size=16)
    assert len(record) == 1
    assert len(dataset.names) == 5 and "cut.png" not in dataset.names


def test_training_dataset_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LatentpaintError, match="no images"):
        TrainingDataset(tmp_path / "empty", size=16)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"")
    with pytest.raises(LatentpaintError, match="none of the 1 images"), warnings.catch_warnings():
        TrainingDataset(tmp_path / "bad", size=16)
    with pytest.raises(LatentpaintError, match="unknown mask preset"):
        TrainingDataset("builtin", size=16, mask_preset="nope")


def test_builtin_training_dataset():
    data = TrainingDataset("builtin", size=32, seed=0)
    assert len(data) == 9 and data[20]["image"].shape == (3, 32, 32)


# -- StepSampler --------------------------------------------------------------------------------------


def test_step_sampler_resume_matches_an_uninterrupted_run():
    batch = 3
    full = list(StepSampler.from_step(0, 10, batch))
    assert full == list(range(30))
    first = list(StepSampler.from_step(0, 4, batch))
    resumed = list(StepSampler.from_step(4, 6, batch))
    assert first + resumed == full
    assert len(StepSampler.from_step(4, 6, batch)) == 18


@pytest.mark.parametrize("world", [2, 3])
def test_step_sampler_ranks_partition_each_global_batch(world):
    batch, steps = 2, 5
    per_rank = [list(StepSampler.from_step(0, steps, batch, rank, world)) for rank in range(world)]
    assert len(set().union(*map(set, per_rank))) == sum(map(len, per_rank))  # disjoint
    for step in range(steps):
        global_batch = set().union(*(set(r[step * batch : (step + 1) * batch]) for r in per_rank))
        assert global_batch == set(range(step * batch * world, (step + 1) * batch * world))
    # resuming every rank at step 2 continues each rank's own sequence
    for rank in range(world):
        assert list(StepSampler.from_step(2, steps - 2, batch, rank, world)) == per_rank[rank][2 * batch :]


def test_step_sampler_rejects_bad_arguments():
    with pytest.raises(LatentpaintError):
        StepSampler(4, batch_size=0)
    with pytest.raises(LatentpaintError, match="rank 2"):
        StepSampler(4, 1, rank=2, world_size=2)


# -- InpaintingDataModule -----------------------------------------------------------------------------


def test_datamodule_without_trainer_starts_at_zero(solid_folder):
    module = InpaintingDataModule(train=str(solid_folder), size=16, batch_size=2, max_steps=7)
    loader = module.train_dataloader()
    assert len(loader) == 7 and loader.sampler.start == 0
    assert next(iter(loader))["image"].shape == (2, 3, 16, 16)


class _Recorder(L.LightningModule):
    """Two optimizers stepped by hand, as in GAN training: global_step advances twice per batch."""

    def __init__(self, stop_after: int | None = None):
        super().__init__()
        self.a, self.b = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
        self.automatic_optimization = False
        self.seen: list[bytes] = []
        self.stop_after = stop_after

    def training_step(self, batch, batch_idx):
        if self.stop_after is not None and len(self.seen) == self.stop_after:
            raise RuntimeError("crash")  # a crash after the checkpoint at step 4
        self.seen.append(batch["image"].numpy().tobytes())
        for opt, layer in zip(self.optimizers(), (self.a, self.b), strict=True):
            opt.zero_grad()
            self.manual_backward(layer(torch.ones(1, 1)).sum())
            opt.step()

    def configure_optimizers(self):
        return [torch.optim.SGD(self.a.parameters(), 0.1), torch.optim.SGD(self.b.parameters(), 0.1)]


def test_resumed_lightning_run_sees_the_same_batches(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    def fit(model, ckpt=None, checkpoints=False):
        trainer = L.Trainer(
            max_steps=12,  # 6 batches of two optimizer steps
            accelerator="cpu",
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            use_distributed_sampler=False,
            enable_checkpointing=checkpoints,
            callbacks=[ModelCheckpoint(tmp_path, "{step}", every_n_train_steps=4, save_top_k=-1)]
            if checkpoints
            else [],
        )
        data = InpaintingDataModule(train="builtin", size=16, batch_size=2, max_steps=12, seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Lightning warns that mid-epoch resumes may not be exact
            trainer.fit(model, datamodule=data, ckpt_path=ckpt)
        return model.seen

    full = fit(_Recorder())
    assert len(full) == 6
    interrupted = _Recorder(stop_after=3)
    with pytest.raises(RuntimeError, match="crash"):
        fit(interrupted, checkpoints=True)  # checkpoint after batch 2 (step 4), crash in batch 4
    resumed = fit(_Recorder(), ckpt=tmp_path / "step=4.ckpt")
    assert interrupted.seen[:2] + resumed == full


# -- evaluation pairs ---------------------------------------------------------------------------------


def make_pairs(folder) -> None:
    folder.mkdir()
    for name, masks in (("a", 2), ("b", 1)):
        save_image(folder / f"{name}.png", noise(20, 24))
        for k in range(masks):
            mask = np.zeros((20, 24), np.uint8)
            mask[k : k + 5, 3:9] = 255
            save_image(folder / f"{name}_mask{k:03d}.png", mask)


def test_find_pairs_and_evaluation_items(tmp_path):
    make_pairs(tmp_path / "eval")
    pairs = find_pairs(tmp_path / "eval")
    assert [(i.name, m.name) for i, m in pairs] == [
        ("a.png", "a_mask000.png"),
        ("a.png", "a_mask001.png"),
        ("b.png", "b_mask000.png"),
    ]
    data = EvaluationDataset(tmp_path / "eval")
    item = data[1]
    assert item["image"].shape == (3, 20, 24) and item["mask"].shape == (1, 20, 24)
    assert item["mask"].sum() == 30 and (item["name"], item["mask_name"]) == ("a", "a_mask001")


def test_find_pairs_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LatentpaintError, match="holds no images"):
        find_pairs(tmp_path / "empty")
    (tmp_path / "nomasks").mkdir()
    save_image(tmp_path / "nomasks" / "a.png", noise(4, 4))
    with pytest.raises(LatentpaintError, match="no NAME_maskNNN.png masks"):
        find_pairs(tmp_path / "nomasks")
    make_pairs(tmp_path / "orphan")
    (tmp_path / "orphan" / "b.png").unlink()
    with pytest.raises(LatentpaintError, match="b_mask000.png' has no image 'b.png'"):
        find_pairs(tmp_path / "orphan")
    with pytest.raises(LatentpaintError, match="does not exist"):
        find_pairs(tmp_path / "missing")


def test_evaluation_mask_size_mismatch(tmp_path):
    make_pairs(tmp_path / "eval")
    save_image(tmp_path / "eval" / "b_mask000.png", np.zeros((5, 5), np.uint8))
    with pytest.raises(LatentpaintError, match="b_mask000.png' is 5x5 but its image is 24x20"):
        EvaluationDataset(tmp_path / "eval")[2]


@pytest.mark.timeout(60)
def test_loader_workers_start_after_the_process_has_computed():
    """A second training in one process (experiment, demo) forks workers after torch and OpenCV ran:
    the workers must still deliver (configuring OpenCV inside a forked worker used to kill or hang it)."""
    import cv2
    import torch

    from latentpaint.data.datamodule import InpaintingDataModule

    torch.nn.functional.conv2d(torch.rand(4, 32, 96, 96), torch.rand(32, 32, 3, 3))
    cv2.resize(np.zeros((512, 512, 3), np.uint8), (300, 300))
    loader = InpaintingDataModule("builtin", 256, 2, 2, "wide", seed=0, max_steps=4).train_dataloader()
    batches = [batch for _, batch in zip(range(3), loader)]
    assert len(batches) == 3 and batches[0]["image"].shape == (2, 3, 256, 256)
