"""Scoring inpaintings (SSIM, PSNR, LPIPS, FID, LaMa's mask-area bins), shared by training's validation and evaluation."""
