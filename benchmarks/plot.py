"""Draws docs/benchmarks.png from the JSON the benchmark scripts print with --json.

python benchmarks/plot.py docs/bench/train_step.json docs/bench/inference.json docs/benchmarks.png
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(train_json: str, inference_json: str, out_png: str) -> None:
    train, infer = json.load(open(train_json)), json.load(open(inference_json))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))

    presets = list(train["presets"])
    ratios = [train["presets"][p]["ratio"] for p in presets]
    left.barh(presets[::-1], ratios[::-1], color="#4c78a8")
    left.axvline(1.0, color="grey", linewidth=0.8)
    for y, r in enumerate(ratios[::-1]):
        left.text(r + 0.02, y, f"{r:.2f}x", va="center", fontsize=8)
    left.set_xlabel(f"step time / pixel-alpha ({train['arch']}, {train['size']} px, batch {train['batch']})")
    left.set_title("training step", fontsize=10)

    sizes = list(infer["sizes"])
    eager = [infer["sizes"][s]["eager_s"] for s in sizes]
    right.plot(sizes, eager, "o-", label="eager")
    for key, label in (
        ("optimized_s", "optimised (BN folded + channels-last)"),
        ("optimized_compile_s", "optimised + torch.compile"),
    ):
        if all(key in infer["sizes"][s] for s in sizes):
            right.plot(sizes, [infer["sizes"][s][key] for s in sizes], "o-", label=label)
    right.set_yscale("log")
    right.set_xlabel("image side (px)")
    right.set_ylabel("seconds / image")
    right.set_title(f"{infer['arch']} inference on {infer['device']}", fontsize=10)
    right.legend(fontsize=8)
    fig.suptitle(
        f"{train['machine']['cpu']}, {train['machine']['cores']} cores, torch {train['machine']['torch']}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)


if __name__ == "__main__":
    main(*sys.argv[1:4])
