"""Scoring inpaintings: SSIM, PSNR, LPIPS and FID over LaMa's mask-area bins, plus the OpenCV floor."""
