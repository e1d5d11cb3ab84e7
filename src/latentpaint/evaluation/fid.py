"""Moved to latentpaint.metrics.fid; re-exported here so old imports keep working."""

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
    create_fid_feature,
    fid_helper_model_path,
    frechet_distance,
)
