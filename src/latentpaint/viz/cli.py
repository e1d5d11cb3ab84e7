"""`latentpaint visualize`: the thesis' figure 4.4, the damage a mask does in latent space."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    from latentpaint.files import add_overwrite_flag
    from latentpaint.options import side

    p = subparsers.add_parser(
        "visualize",
        help="render D(E(gt) - E(masked)) (and D(R(z) - z) for a trained refiner) for one image and mask",
    )
    p.add_argument(
        "--checkpoint", required=True, help="stage-1 or stage-2 checkpoint, release folder or LaMa folder"
    )
    p.add_argument("--image", required=True, type=Path)
    p.add_argument("--mask", required=True, type=Path, help="grey image, > 0 = missing")
    p.add_argument("--out", required=True, type=Path, help="PNG to write")
    p.add_argument(
        "--size", type=side, default=None, help="resize the image and mask to this square size first"
    )
    add_overwrite_flag(p)
    p.set_defaults(func=run)


def load_for_visualization(path: str | Path):
    """(network, has_trained_refiner): a stage-1 autoencoder gets an identity mask path and no refiner panel."""
    from latentpaint.inference.checkpoints import (
        load_network,
        load_state_strict,
        read_training_checkpoint,
        strip_prefix,
        training_network,
    )
    from latentpaint.inference.lama import raise_if_torchscript
    from latentpaint.inference.safety import model_section
    from latentpaint.models.network import ModelSpec

    path = Path(path)
    if not path.is_file():
        return load_network(path).eval(), True  # release or LaMa folder
    raise_if_torchscript(path)
    config, state = read_training_checkpoint(path)  # read once, whichever stage it is
    if config.get("stage") != "autoencoder":
        return training_network(config, state, path).eval(), True
    network = ModelSpec.from_dict(model_section(config, path), path).plain_encoder().build()
    load_state_strict(network.generator, strip_prefix(state, "generator."), path)
    return network.eval(), False


def run(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np
    import torch

    from latentpaint.data.images import check_same_size, load_mask, load_rgb
    from latentpaint.errors import quoted
    from latentpaint.files import check_outputs
    from latentpaint.models.apply import image_to_tensor, pad_to_multiple, tensor_to_image
    from latentpaint.models.damage import latent_damage, latent_repair
    from latentpaint.viz.figures import image_grid

    check_outputs([args.out], [args.image, args.mask, args.checkpoint], args.overwrite)
    network, trained = load_for_visualization(args.checkpoint)
    image, mask = load_rgb(args.image), load_mask(args.mask)
    if args.size:
        image = cv2.resize(image, (args.size, args.size), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, (args.size, args.size), interpolation=cv2.INTER_NEAREST)
    check_same_size(image, mask, f"mask {quoted(args.mask)}")
    h, w = mask.shape
    multiple = 2**network.generator.n_downsampling
    x = image_to_tensor(pad_to_multiple(image, multiple))
    m = torch.from_numpy(pad_to_multiple(mask, multiple))[None, None]

    panels = [image, (mask * 255).astype(np.uint8), (image * (1 - mask[..., None])).astype(np.uint8)]
    titles = ["image", "mask", "masked", "D(E(gt) - E(masked))"]
    with torch.no_grad():
        panels.append(tensor_to_image(latent_damage(network, x, m), h, w))
        if trained:
            panels.append(tensor_to_image(latent_repair(network, x, m), h, w))
            titles.append("D(R(z) - z)")
            panels.append(tensor_to_image(network.inpaint(x, m), h, w))
            titles.append("inpainted")
    image_grid([panels], titles, args.out)
    print(f"wrote {args.out}")
    return 0
