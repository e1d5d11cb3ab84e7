"""The one LaMa pairing rule: `NAME.png` is inpainted with each `NAME_mask.png`, `NAME_mask000.png`, ...

`predict`, `evaluate`, the evaluation data set and `experiment` all pair files with `lama_pairs`, so a folder
means the same thing to each of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

# the whole stem, whatever it holds: "." matches a newline too, and fullmatch has no "$" that would stop
# before a final newline
_MASK_STEM = re.compile(r"(?P<image>.+)_mask\d*", re.DOTALL)


def mask_owner(path: Path) -> str | None:
    """The stem of the image a LaMa mask belongs to (`a_mask000.png` -> `a`), or None for an image."""
    match = _MASK_STEM.fullmatch(path.stem)
    return None if match is None else match["image"]


@dataclass
class LamaPairs:
    pairs: list[tuple[Path, Path]] = field(default_factory=list)  # (image, mask), in the masks' order
    orphans: list[Path] = field(default_factory=list)  # masks without their image
    unmasked: list[Path] = field(default_factory=list)  # images without any mask


def lama_pairs(files: list[Path]) -> LamaPairs:
    """Pairs image files (any order in, mask order out) by LaMa's naming, within each folder."""
    images: dict[Path, list[Path]] = {}
    for path in files:
        if mask_owner(path) is None:
            images.setdefault(path.with_suffix(""), []).append(path)
    found, used = LamaPairs(), set()
    for mask in files:
        owner = mask_owner(mask)
        if owner is None:
            continue
        candidates = images.get(mask.parent / owner, [])
        if not candidates:
            found.orphans.append(mask)
            continue
        # LaMa writes images as .png; another extension when that is all there is
        image = next((c for c in candidates if c.suffix.lower() == ".png"), candidates[0])
        found.pairs.append((image, mask))
        used.add(image)
    found.unmasked = [p for group in images.values() for p in group if p not in used]
    return found
