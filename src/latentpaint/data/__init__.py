"""Images, masks and data sets: folders or the built-in photos in, seeded training batches out."""

from latentpaint.data.images import (
    IMAGE_EXTENSIONS,
    MAX_PIXELS,
    builtin_photos,
    list_images,
    load_mask,
    load_rgb,
    save_image,
)


def __getattr__(name: str):
    # the data sets need torch and the data module Lightning: load them only when asked for
    if name in ("TrainingDataset", "EvaluationDataset", "StepSampler", "find_pairs"):
        from latentpaint.data import datasets

        return getattr(datasets, name)
    if name == "InpaintingDataModule":
        from latentpaint.data.datamodule import InpaintingDataModule

        return InpaintingDataModule
    raise AttributeError(name)


__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "EvaluationDataset",
    "InpaintingDataModule",
    "StepSampler",
    "TrainingDataset",
    "builtin_photos",
    "find_pairs",
    "list_images",
    "load_mask",
    "load_rgb",
    "save_image",
]
