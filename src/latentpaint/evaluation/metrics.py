"""Moved to latentpaint.metrics.suite (FID's names to metrics.fid, weight files to metrics.weight_files);
re-exported here so old imports keep working."""

from latentpaint.metrics.fid import (  # noqa: F401
    FID_FEATURES,
    FID_HELPER_PIN,
    INCEPTION_SIZE,
    PYTORCH_FID_FILE,
    PYTORCH_FID_URL,
    TORCH_FIDELITY_PIN,
    FidHelperInception,
    PytorchFidInception,
    StandInFeatures,
    _inception_input,
    create_fid_feature,
    fid_helper_model_path,
    frechet_distance,
)
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
from latentpaint.metrics.weight_files import (  # noqa: F401
    find_weight_file,
    hub_checkpoints_dir,
    missing_file_error,
    torch_hub_holding,
)
