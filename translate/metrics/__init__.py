"""Image-quality metrics: per-image (PSNR, SSIM, L1; LPIPS with a weights file) and
distribution metrics (FID, KID with an Inception weights file). Heavy libraries load lazily."""

from translate.metrics.quality import (
    Y_OFFSET,
    Y_WEIGHTS,
    l1,
    psnr,
    rgb_to_y,
    shave,
    ssim,
    y_psnr_ssim,
)

__all__ = ["Y_OFFSET", "Y_WEIGHTS", "l1", "psnr", "rgb_to_y", "shave", "ssim", "y_psnr_ssim"]
