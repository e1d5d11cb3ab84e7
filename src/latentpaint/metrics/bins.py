"""LaMa's mask-area bins (0-10%, ..., 90-100%) and its integral scores that fold FID into SSIM or LPIPS."""

from __future__ import annotations

import numpy as np

NUM_BINS = 10
# LaMa's InpaintingEvaluator: `np.linspace(0, 1, bins + 1)` with bins=10
BIN_EDGES = np.linspace(0, 1, NUM_BINS + 1)
BIN_LABELS = tuple(f"{round(100 * lo)}-{round(100 * hi)}%" for lo, hi in zip(BIN_EDGES[:-1], BIN_EDGES[1:]))


def bin_index(mask_area: float | np.ndarray) -> np.ndarray:
    """Bin number(s) 0..9 of mask areas in [0, 1]: bins are [lo, hi), the last one also holds area 1."""
    # LaMa's offline evaluator (InpaintingEvaluator._get_bin_edges): searchsorted(side="right") - 1, so an
    # area of exactly 0.1 lands in 10-20%; its corner case sends area 1.0 to the last bin, which the clip does.
    # (Its online evaluator uses side="left" and differs exactly on the edges; we follow the offline one,
    # which bin/evaluate_predicts.py and the published tables use.)
    index = np.searchsorted(BIN_EDGES, np.asarray(mask_area, dtype=np.float64), side="right") - 1
    return np.clip(index, 0, NUM_BINS - 1)


def area_bin(mask_area: float) -> str:
    """The bin label ("0-10%" ... "90-100%") of one mask area given as a fraction in [0, 1]."""
    return BIN_LABELS[int(bin_index(mask_area))]


def group_by_bin(mask_areas: np.ndarray) -> dict[str, np.ndarray]:
    """Indices of the images in each non-empty bin, keyed by label, in bin order."""
    indices = bin_index(np.asarray(mask_areas, dtype=np.float64).reshape(-1))
    return {BIN_LABELS[b]: np.flatnonzero(indices == b) for b in range(NUM_BINS) if (indices == b).any()}


def _f1(score: float, fid: float, fid_scale: float) -> float:
    """LaMa's harmonic mean of a higher-is-better score and FID mapped to [0, 1]."""
    fid_rel = max(0.0, fid_scale - fid) / fid_scale
    return 2 * score * fid_rel / (score + fid_rel + 1e-3)


def ssim_fid100_f1(ssim: float, fid: float, fid_scale: float = 100.0) -> float:
    """LaMa's `ssim_fid100_f1`: 2·s·r / (s + r + 0.001) with s = mean SSIM, r = max(0, 100 − FID) / 100."""
    return _f1(ssim, fid, fid_scale)


def lpips_fid100_f1(lpips: float, fid: float, fid_scale: float = 100.0) -> float:
    """LaMa's `lpips_fid100_f1`: 2·s·r / (s + r + 0.001) with s = 1 − mean LPIPS, r = max(0, 100 − FID) / 100."""
    return _f1(1.0 - lpips, fid, fid_scale)
