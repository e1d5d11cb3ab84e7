"""The latent damage maps moved beside the network they run (models/damage.py); this name stays for old imports."""

from latentpaint.models.damage import encode_clean, latent_damage, latent_repair

__all__ = ["encode_clean", "latent_damage", "latent_repair"]
