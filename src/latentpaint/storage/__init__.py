"""Reading weight and config files safely: the low room every other part of latentpaint may use."""
