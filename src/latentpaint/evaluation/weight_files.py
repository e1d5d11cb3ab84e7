"""Moved to latentpaint.metrics.weight_files; re-exported here so old imports keep working."""

from latentpaint.metrics.weight_files import (  # noqa: F401
    find_weight_file,
    hub_checkpoints_dir,
    missing_file_error,
    torch_hub_holding,
)
