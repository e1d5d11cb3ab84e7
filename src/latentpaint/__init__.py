"""latentpaint: inpainting in the latent space of a frozen autoencoder."""
