"""Moved to latentpaint.metrics.bins; re-exported here so old imports keep working."""

from latentpaint.metrics.bins import (  # noqa: F401
    BIN_EDGES,
    BIN_LABELS,
    NUM_BINS,
    area_bin,
    bin_index,
    group_by_bin,
    lpips_fid100_f1,
    ssim_fid100_f1,
)
