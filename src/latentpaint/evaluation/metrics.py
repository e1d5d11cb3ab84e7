"""Moved to latentpaint.metrics.suite (FID's names to metrics.fid, weight files to metrics.weight_files);
re-exported here so old imports keep working. FID's and the weight files' names come through their own
old modules (evaluation/fid.py, evaluation/weight_files.py), so each moved name is listed once."""

from latentpaint.evaluation.fid import *  # noqa: F403 - every name evaluation.metrics offered before
from latentpaint.evaluation.weight_files import *  # noqa: F403
from latentpaint.metrics.fid import _inception_input  # noqa: F401 - private, but importable here before
from latentpaint.metrics.suite import (  # noqa: F401
    METRICS,
    PSNR_MIN_MSE,
    SSIM_CONVENTIONS,
    SSIM_DESCRIPTIONS,
    SSIM_SIGMA,
    SSIM_WINDOW,
    VGG16_FILE,
    VGG16_URL,
    MetricSuite,
    bins,
    create_lpips,
    psnr,
    ssim,
)
