"""`ModelSpec`: the one description of an inpainting network that runs, releases and loaders share.

Its dictionary form, `{arch, mask_mode, delta, prefill, overrides, output}`, is the `model` section of a run
config (plus training-only keys) and the top of a release `config.json` (plus provenance keys).

The class is defined in `models/network.py`, beside the `InpaintingNetwork` it builds (a network carries
its spec, a spec builds its network: one module, no import circle); this is its public home.
"""

from __future__ import annotations

from latentpaint.models.network import MASK_MODES, OUTPUTS, PREFILLS, SPEC_KEYS, ModelSpec

__all__ = ["MASK_MODES", "OUTPUTS", "PREFILLS", "SPEC_KEYS", "ModelSpec"]
