"""State dicts: prefixes, key/shape agreement with a network, floating-point and finite weights, each one
sentence on failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from latentpaint.errors import LatentpaintError, quoted


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under `prefix`, with it removed (e.g. 'generator.' of a LaMa checkpoint)."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def shapes_of(state: dict[str, Any]) -> dict[str, tuple | None]:
    """key -> shape of a state dict (None for an entry that is not a tensor)."""
    return {k: tuple(v.shape) if isinstance(v, torch.Tensor) else None for k, v in state.items()}


def check_state_shapes(network, found: dict[str, tuple | None], source: str | Path) -> None:
    """One sentence when `found` (key -> shape) is not exactly the keys and shapes of `network`'s state."""
    expected = shapes_of(network.state_dict())
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0][:80]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} of another shape (e.g. {k}: {found[k]} vs {expected[k]})")
        raise LatentpaintError(
            f"{quoted(source)} holds weights of another architecture: {'; '.join(parts)} keys"
        )


def load_state_strict(network, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """load_state_dict(strict=True) with one sentence when the architectures differ, or the weights are
    not floating point, or not finite. Every loader (releases, checkpoints, LaMa files) comes through here."""
    check_state_shapes(network, shapes_of(state), source)
    refuse_non_float(network, state, source)
    refuse_non_finite(state, source)
    network.load_state_dict(state, strict=True)


def refuse_non_float(network, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """A weight the network holds in floating point must be floating point in the file: load_state_dict
    would silently turn bool or int8 tensors into 0/1 or integer weights that inpaint garbage. Half
    precision and bfloat16 are fine (they are upcast); buffers such as BatchNorm's step count are integers."""
    expected = network.state_dict()
    bad = [
        name
        for name, value in state.items()
        if isinstance(value, torch.Tensor)
        and not value.is_floating_point()
        and isinstance(expected.get(name), torch.Tensor)
        and expected[name].is_floating_point()
    ]
    if bad:
        dtype = str(state[bad[0]].dtype).removeprefix("torch.")
        raise LatentpaintError(
            f"{quoted(source)} holds weights that are not floating point ({len(bad)} of {len(state)} tensors, e.g. "
            f"{bad[0]!r} as {dtype}); expected float32, float16 or bfloat16"
        )


def refuse_non_finite(state: dict[str, torch.Tensor], source: str | Path) -> None:
    """Weights with NaN or infinity would inpaint solid black: refused, naming the first such tensor."""
    bad = [
        name
        for name, value in state.items()
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all()
    ]
    if bad:
        raise LatentpaintError(
            f"{quoted(source)} holds weights that are NaN or infinite ({len(bad)} of {len(state)} tensors, e.g. {bad[0]}); the "
            "training that wrote it diverged or the file is damaged"
        )
