"""`latentpaint data photos`: a training set of natural photographs from what is installed, no download.

Sources (each photo keeps its source and licence in `sources.json`):
  * scikit-image's and scikit-learn's bundled photos (always present: they are dependencies),
  * matplotlib's sample photo (Grace Hopper),
  * OpenCV's sample photos as Debian packages them (`apt-get install opencv-doc`, read from
    /usr/share/doc/opencv-doc/examples or `--opencv-samples DIR`), a curated list that leaves out
    calibration boards, logos, drawings, text renderings and paintings.
Desktop-wallpaper packages are deliberately not a source: they are kept for independent held-out
evaluation (`benchmarks/quality.py`).

The train / held-out split is by *group*, never by crop: photos of one scene (stereo pairs, flow pairs)
share a group and so a split. Which groups are held out is a pure function of the seed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from latentpaint.errors import LatentpaintError

OPENCV_SAMPLES = Path("/usr/share/doc/opencv-doc/examples")
OPENCV_LICENCE = (
    "OpenCV sample data (opencv/samples/data, Apache-2.0 repository; photo rights with their authors)"
)

# (file under the examples folder, group); a group is one scene
OPENCV_PHOTOS: tuple[tuple[str, str], ...] = (
    ("data/HappyFish.jpg", "happyfish"), ("data/aero1.jpg", "aero"), ("data/aero3.jpg", "aero"),
    ("data/aloeL.jpg", "aloe"), ("data/aloeR.jpg", "aloe"), ("data/apple.jpg", "apple"),
    ("data/baboon.jpg", "baboon"), ("data/basketball1.png", "basketball"), ("data/basketball2.png", "basketball"),
    ("data/board.jpg", "board"), ("data/box_in_scene.png", "box"), ("data/building.jpg", "building"),
    ("data/butterfly.jpg", "butterfly"), ("data/ela_original.jpg", "ela"), ("data/fruits.jpg", "fruits"),
    ("data/graf1.png", "graf"), ("data/graf3.png", "graf"), ("data/home.jpg", "home"),
    ("data/leuvenA.jpg", "leuven"), ("data/leuvenB.jpg", "leuven"), ("data/messi5.jpg", "messi"),
    ("data/orange.jpg", "orange"), ("data/rubberwhale1.png", "rubberwhale"), ("data/rubberwhale2.png", "rubberwhale"),
    ("data/smarties.png", "smarties"), ("data/squirrel_cls.jpg", "squirrel"), ("data/stuff.jpg", "stuff"),
    ("alphamat/input_images/plant.jpg", "plant"), ("fuzzy/input.png", "fuzzy"),
    ("ximgproc/stanford.png", "stanford"), ("hfs/data/000.jpg", "hfs000"),
    ("text/scenetext01.jpg", "scenetext01"), ("text/scenetext02.jpg", "scenetext02"),
    ("text/scenetext03.jpg", "scenetext03"), ("text/scenetext04.jpg", "scenetext04"),
    ("text/scenetext05.jpg", "scenetext05"), ("text/scenetext06.jpg", "scenetext06"),
)  # fmt: skip


@dataclass
class Photo:
    name: str
    group: str
    source: str
    licence: str
    split: str = "train"
    width: int = 0
    height: int = 0


# how the built-in photos (data.images.builtin_photos) are grouped and where they come from
BUILTIN_GROUPS = {
    "hubble_deep_field": "hubble",
    "motorcycle_left": "motorcycle",
    "motorcycle_right": "motorcycle",
}
SKLEARN_PHOTOS = ("china", "flower")  # load_sample_images(); the others are skimage.data's
SKIMAGE_LICENCE = "scikit-image data (skimage/data/README: public domain or CC0 unless noted)"
SKLEARN_LICENCE = "scikit-learn sample images (CC BY 2.0, see sklearn/datasets/images/README.txt)"


def _package_photos() -> Iterator[tuple[Photo, Callable[[], np.ndarray]]]:
    """Photos inside installed Python packages (always available)."""
    from latentpaint.data.images import builtin_photos

    for name, image in builtin_photos():
        if name in SKLEARN_PHOTOS:
            source, licence = f"scikit-learn load_sample_images() {name}.jpg", SKLEARN_LICENCE
        elif name.startswith("motorcycle_"):
            source = "scikit-image skimage.data.stereo_motorcycle() (Middlebury stereo 2014)"
            licence = SKIMAGE_LICENCE
        else:
            source, licence = f"scikit-image skimage.data.{name}()", SKIMAGE_LICENCE
        yield Photo(name, BUILTIN_GROUPS.get(name, name), source, licence), lambda image=image: image
    import matplotlib  # a dependency; its one sample photo

    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if hopper.is_file():
        yield (
            Photo("grace_hopper", "grace_hopper", "matplotlib sample_data/grace_hopper.jpg",
                  "public domain (US Navy photograph)"),
            lambda: _read(hopper),
        )  # fmt: skip


def _read(path: Path) -> np.ndarray:
    from latentpaint.data.images import load_rgb

    return load_rgb(path)


def _opencv_photos(root: Path) -> Iterator[tuple[Photo, Callable[[], np.ndarray]]]:
    for relative, group in OPENCV_PHOTOS:
        path = root / relative
        if path.is_file():
            name = "opencv_" + Path(relative).stem
            yield (
                Photo(name, group, f"opencv-doc examples/{relative}", OPENCV_LICENCE),
                lambda p=path: _read(p),
            )


def collect(opencv_samples: Path | None = OPENCV_SAMPLES) -> list[tuple[Photo, Callable[[], np.ndarray]]]:
    """Every available photo with a loader; OpenCV's only when its folder exists."""
    photos = list(_package_photos())
    if opencv_samples is not None and opencv_samples.is_dir():
        photos += list(_opencv_photos(opencv_samples))
    return photos


def split_groups(groups: list[str], heldout_fraction: float, seed: int) -> set[str]:
    """The groups held out: a seeded choice of round(fraction * n) groups (at least one when > 0)."""
    unique = sorted(set(groups))
    if heldout_fraction <= 0:
        return set()
    count = max(1, round(heldout_fraction * len(unique)))
    if count >= len(unique):
        raise LatentpaintError(
            f"holding out {count} of {len(unique)} photo groups would leave none to train on"
        )
    chosen = np.random.default_rng(seed).choice(len(unique), size=count, replace=False)
    return {unique[i] for i in chosen}


def assemble(out: Path, opencv_samples: Path | None, heldout_fraction: float, seed: int) -> list[Photo]:
    """Writes out/train/*.png, out/heldout/*.png and out/sources.json; returns the records."""
    from latentpaint.data.images import save_image
    from latentpaint.files import atomic_write

    photos = collect(opencv_samples)
    heldout = split_groups([p.group for p, _ in photos], heldout_fraction, seed)
    records = []
    for photo, load in photos:
        image = np.asarray(load())
        if image.ndim == 2:  # greyscale sources become RGB like every other loader does
            image = np.repeat(image[..., None], 3, axis=2)
        image = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
        photo.split = "heldout" if photo.group in heldout else "train"
        photo.height, photo.width = image.shape[:2]
        save_image(out / photo.split / f"{photo.name}.png", image)
        records.append(photo)
    text = json.dumps({"seed": seed, "heldout_groups": sorted(heldout), "photos": [asdict(r) for r in records]},
                      indent=2)  # fmt: skip
    atomic_write(out / "sources.json", lambda p: p.write_text(text))
    return records
