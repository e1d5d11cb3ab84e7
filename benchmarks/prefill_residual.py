"""Does the refiner change its prefill? Scores a stage-2 checkpoint's hole two ways on quality.py's held-out set.

    python benchmarks/prefill_residual.py runs/s2/telea/checkpoints/last.ckpt

- network output: D(R(E(x))) for `model.output=direct`, the next row for `residual`;
- prefill + D(R(z)) - D(z): the refiner's decoded change added to the prefill, which removes the
  autoencoder's own reconstruction error from the hole. If this equals the prefill alone, R(z) = z.
Prints SSIM / PSNR / FID of both, of the prefill alone and of OpenCV Telea (docs/quality.md, session 3).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality  # noqa: E402
from common import machine  # noqa: E402


def to_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255


def to_uint8(t: torch.Tensor) -> np.ndarray:
    return (t.clamp(0, 1) * 255 + 0.5).byte().permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def fills(network, images: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
    x, m = to_tensor(images), torch.from_numpy(masks)[:, None].float()
    own = f"network output ({network.output_kind})"  # for output=residual it is the third row
    out: dict[str, list[torch.Tensor]] = {"prefill alone": [], own: [], "prefill + D(R(z)) - D(z)": []}
    for i in range(0, len(x), 16):
        xi, mi = x[i : i + 16], m[i : i + 16]
        prefill = network.masked_image(xi, mi)
        z = network.encode_masked(prefill, mi)
        refined = network.refine(z)
        for name, hole in (
            ("prefill alone", prefill),
            (own, network.output(prefill, z, refined)),
            ("prefill + D(R(z)) - D(z)", prefill + network.decode(refined) - network.decode(z)),
        ):
            out[name].append(hole.clamp(0, 1) * mi + xi * (1 - mi))
    return {k: to_uint8(torch.cat(v)) for k, v in out.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a stage-2 checkpoint or release folder")
    p.add_argument("--photos", type=Path, default=Path("runs/quality/photos"), help="`data photos` output")
    p.add_argument("--crops", type=int, default=4)
    args = p.parse_args()
    from latentpaint.inference.checkpoints import load_network

    paths = quality.heldout_photos([args.photos / "heldout"] + [Path(d) for d in quality.WALLPAPERS])
    _, images, masks = quality.heldout_crops(paths, 256, args.crops, 0)
    network = load_network(args.checkpoint).eval()
    rows = {"OpenCV Telea": quality.fill_with_classical("opencv-telea", images, masks)[0]}
    rows.update(fills(network, images, masks))
    print(f"{machine()}; {len(images)} crops, prefill {network.prefill}")
    for name, filled in rows.items():
        s = quality.score(filled, images, masks, None)
        print(f"{name:28s} SSIM {s['ssim']:.4f}  PSNR {s['psnr']:.2f}  FID {s['fid']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
