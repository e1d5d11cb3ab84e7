import cv2
import numpy as np
import pytest
from PIL import Image

from latentpaint.cli import main
from latentpaint.errors import LatentpaintError
from latentpaint.masks import (
    MASK_PRESETS,
    BoxParams,
    IrregularParams,
    MaskGenerator,
    MaskPreset,
    get_mask_generator,
    list_mask_presets,
    mask_area,
    random_box_mask,
    random_irregular_mask,
)

PRESETS = ["wide", "thin_256", "thin_512", "medium_256", "medium_512", "thick_256", "thick_512"]


def draw(preset: str, n: int, size: int = 64, seed: int = 0) -> list[np.ndarray]:
    generator = get_mask_generator(preset, size)
    rng = np.random.default_rng(seed)
    return [generator(size, size, rng) for _ in range(n)]


def test_preset_names():
    assert list_mask_presets() == sorted(PRESETS)
    assert set(MASK_PRESETS) == set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_same_seed_same_masks_and_seeds_differ(preset):
    a, b, c = draw(preset, 5, seed=1), draw(preset, 5, seed=1), draw(preset, 5, seed=2)
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a, b, strict=True))
    assert any(x.tobytes() != z.tobytes() for x, z in zip(a, c, strict=True))


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("size", [32, 48, 64])
def test_every_preset_gives_binary_nonempty_masks(preset, size):
    for mask in draw(preset, 20, size=size):
        assert mask.dtype == np.float32 and mask.shape == (size, size)
        assert set(np.unique(mask)) <= {0.0, 1.0}
        assert 0 < mask_area(mask) <= 1


def test_area_statistics_are_plausible():
    mean = {p: np.mean([mask_area(m) for m in draw(p, 50)]) for p in PRESETS}
    assert mean["medium_256"] < mean["thick_256"]
    assert mean["medium_512"] < mean["thick_512"]
    for preset in PRESETS:
        assert 0.05 < mean[preset] < 0.6, preset


def test_thin_masks_are_made_of_thin_strokes():
    # a 5x5 erosion wipes out 1-3 px strokes but only nibbles at thick ones
    kernel = np.ones((5, 5), np.uint8)

    def surviving(preset: str) -> float:
        masks = draw(preset, 30)
        return sum(cv2.erode(m, kernel).sum() for m in masks) / sum(m.sum() for m in masks)

    assert surviving("thin_256") < 0.5 * surviving("thick_256")


def test_native_size_numbers_are_lamas():
    thick = MASK_PRESETS["thick_256"]
    assert thick.scaled(256) is thick and thick.scaled(None) is thick and thick.scaled(512) is thick
    assert thick.irregular == IrregularParams(4, 200, 100, min_times=1, max_times=5, min_len=10, min_width=5)
    assert thick.box == BoxParams(margin=10, bbox_min_size=30, bbox_max_size=150, min_times=1, max_times=3)
    assert MASK_PRESETS["thick_512"].native_size == 512
    assert MASK_PRESETS["thin_512"].box is None
    # LaMa weighs irregular 1 against box 0.3 and normalises
    np.testing.assert_allclose(get_mask_generator("medium_256").probas, [1 / 1.3, 0.3 / 1.3])
    np.testing.assert_allclose(get_mask_generator("wide").probas, [0.5, 0.5])
    assert [k for k, _ in get_mask_generator("thin_256").kinds] == ["irregular"]


def test_scaling_below_native_size():
    p = get_mask_generator("thick_256", 64).preset
    assert (p.irregular.max_len, p.irregular.max_width, p.irregular.min_len, p.irregular.min_width) == (
        50,
        25,
        3,
        1,
    )
    assert (p.box.margin, p.box.bbox_min_size, p.box.bbox_max_size) == (3, 8, 38)
    assert (p.irregular.min_times, p.irregular.max_times, p.irregular.max_angle) == (1, 5, 4)
    tiny = get_mask_generator("thin_512", 8).preset.irregular
    assert min(tiny.max_len, tiny.max_width, tiny.min_len, tiny.min_width) >= 1
    tiny_box = get_mask_generator("medium_256", 4).preset.box
    assert tiny_box.bbox_min_size >= 1 and tiny_box.bbox_max_size > tiny_box.bbox_min_size
    # scaled masks cover a similar fraction of the image as native ones
    native = np.mean([mask_area(m) for m in draw("thick_256", 40, size=256)])
    scaled = np.mean([mask_area(m) for m in draw("thick_256", 40, size=64)])
    assert abs(native - scaled) < 0.1


def test_box_only_path():
    params = BoxParams(margin=4, bbox_min_size=5, bbox_max_size=20, min_times=1, max_times=1)
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = random_box_mask(48, 40, rng, params)
        ys, xs = np.nonzero(mask)
        box_h, box_w = np.ptp(ys) + 1, np.ptp(xs) + 1
        # exactly one filled rectangle of a size in [5, 20), at least `margin` px from every border
        assert mask.sum() == box_h * box_w
        assert 5 <= box_h < 20 and 5 <= box_w < 20
        assert ys.min() >= 4 and xs.min() >= 4 and ys.max() < 44 and xs.max() < 36
    boxes_only = MaskGenerator(MaskPreset(native_size=64, box=params, irregular_proba=0, box_proba=1))
    assert [k for k, _ in boxes_only.kinds] == ["box"]
    # an image too small for the margin still gets a box instead of an error
    assert random_box_mask(6, 6, rng, params).sum() > 0


def test_irregular_only_path():
    rng = np.random.default_rng(0)
    none = IrregularParams(max_angle=4, max_len=10, max_width=5, min_times=0, max_times=0)
    assert random_irregular_mask(32, 32, rng, none).sum() == 0
    hairline = IrregularParams(max_angle=4, max_len=20, max_width=1, min_times=3, max_times=3, min_width=1)
    mask = random_irregular_mask(64, 64, rng, hairline)
    assert 0 < mask_area(mask) < 0.1
    strokes_only = MaskGenerator(MaskPreset(native_size=64, irregular=hairline))
    assert [k for k, _ in strokes_only.kinds] == ["irregular"]


def test_unknown_preset_lists_valid_names():
    with pytest.raises(LatentpaintError, match="thick_256"):
        get_mask_generator("huge")
    with pytest.raises(LatentpaintError):
        MaskGenerator(MaskPreset(native_size=64))


def test_mask_area():
    mask = np.zeros((4, 4), np.float32)
    mask[:2, :1] = 1
    assert mask_area(mask) == 2 / 16


# -- the `masks` subcommand ---------------------------------------------------------------------------


def make_images(folder, count: int = 3) -> None:
    rng = np.random.default_rng(0)
    (folder / "sub").mkdir(parents=True)
    for i in range(count):
        h, w = 30 + 10 * i, 50 - 5 * i
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / "sub" / "x.jpg")
    (folder / "notes.txt").write_text("not an image")


def run_masks(images, out, *extra) -> int:
    return main(
        ["masks", "--preset", "thick_512", "--images", str(images), "--out", str(out), "--size", "48", *extra]
    )


def test_masks_cli_writes_lama_layout_deterministically(tmp_path, capsys):
    make_images(tmp_path / "in")
    assert run_masks(tmp_path / "in", tmp_path / "a", "--seed", "3", "--masks-per-image", "2") == 0
    assert "wrote 4 images and 8 masks" in capsys.readouterr().out
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    expected = [
        f"{n}{s}.png" for n in ("img0", "img1", "img2", "sub_x") for s in ("", "_mask000", "_mask001")
    ]
    assert names == sorted(expected)

    image = np.asarray(Image.open(tmp_path / "a" / "img1.png"))
    assert image.shape == (48, 48, 3) and image.dtype == np.uint8
    for mask_path in (tmp_path / "a").glob("*_mask*.png"):
        mask = Image.open(mask_path)
        assert mask.mode == "L" and mask.size == (48, 48)
        values = np.asarray(mask)
        assert set(np.unique(values)) <= {0, 255}
        # thick_512 masks exceed half the image ~40 % of the time at this size: those were redrawn
        assert 0 < mask_area(values) <= 0.5

    assert run_masks(tmp_path / "in", tmp_path / "b", "--seed", "3", "--masks-per-image", "2") == 0
    for path in (tmp_path / "a").iterdir():
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name
    assert run_masks(tmp_path / "in", tmp_path / "c", "--seed", "4", "--masks-per-image", "2") == 0
    assert (tmp_path / "a" / "img0_mask000.png").read_bytes() != (
        tmp_path / "c" / "img0_mask000.png"
    ).read_bytes()
    assert not list((tmp_path / "a").glob(".*"))  # no temp files left behind


def test_masks_cli_gives_up_when_no_mask_fits(tmp_path, capsys):
    make_images(tmp_path / "in", count=1)
    assert run_masks(tmp_path / "in", tmp_path / "out", "--max-area", "0.0001") == 2
    assert "no mask with area" in capsys.readouterr().err


def test_masks_cli_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert run_masks(tmp_path / "empty", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no images" in err and "empty" in err


def test_masks_cli_names_unreadable_image(tmp_path, capsys):
    make_images(tmp_path / "in", count=1)
    (tmp_path / "in" / "broken.png").write_bytes(b"")
    assert run_masks(tmp_path / "in", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "broken.png" in err


def test_masks_cli_refuses_output_inside_input(tmp_path, capsys):
    make_images(tmp_path / "in", count=1)
    assert run_masks(tmp_path / "in", tmp_path / "in" / "masks") == 2
    assert "inside" in capsys.readouterr().err
