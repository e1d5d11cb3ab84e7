"""Whether a learned model beats the classical floor (OpenCV's inpainting, inference/classical.py)."""

from __future__ import annotations

# the scores a summary compares, and which way is better
HIGHER_IS_BETTER = {"ssim": True, "psnr": True, "fid": False, "lpips": False}


def worse_metrics(ours: dict[str, float], reference: dict[str, float]) -> list[str]:
    """The scores (upper case, e.g. ["SSIM", "FID"]) on which `ours` is not better than `reference`, over
    those both have: how every summary says whether a learned model beats the classical floor."""
    worse = []
    for key, higher in HIGHER_IS_BETTER.items():
        if key in ours and key in reference:
            better = ours[key] > reference[key] if higher else ours[key] < reference[key]
            if not better:
                worse.append(key.upper())
    return worse
