"""Image quality metrics with the conventions of the published tables.

PSNR and SSIM (Wang et al. 2004) for super-resolution are reported on the luma channel: Y of
ITU-R BT.601 as MATLAB's ``rgb2ycbcr`` computes it (studio range, Y in [16, 235] for 8-bit
RGB), on 8-bit values, with ``border`` pixels cropped from every side. SSIM uses the paper's
11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, over the valid region (no padding),
averaged over the image: kornia's implementation, which follows the paper.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

#: BT.601 luma from RGB in [0, 1], in 8-bit studio range (MATLAB ``rgb2ycbcr``)
Y_WEIGHTS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) float64 BT.601 Y in [16, 235]; (H, W) grey passes through
    as R = G = B."""
    x = rgb.astype(np.float64) / 255.0
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=2)
    return Y_OFFSET + x @ np.asarray(Y_WEIGHTS)


def shave(image: np.ndarray, border: int) -> np.ndarray:
    """Crop ``border`` pixels from every side."""
    if border <= 0:
        return image
    return image[border:-border, border:-border]


def psnr(a: np.ndarray, b: np.ndarray, *, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB between two arrays of one shape (inf when equal)."""
    if a.shape != b.shape:
        raise ValueError(f"psnr: shapes differ, {a.shape} vs {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0:
        return float("inf")
    return 10.0 * float(np.log10(data_range**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray, *, data_range: float = 255.0) -> float:
    """Mean structural similarity of two (H, W) single-channel arrays (Wang et al. 2004)."""
    import kornia

    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"ssim: expected two (H, W) arrays of one shape, got {a.shape}, {b.shape}")
    x = torch.from_numpy(a.astype(np.float64))[None, None]
    y = torch.from_numpy(b.astype(np.float64))[None, None]
    value: Tensor = kornia.metrics.ssim(x, y, 11, max_val=data_range, padding="valid")
    return float(value.mean())


def y_psnr_ssim(output: np.ndarray, reference: np.ndarray, *, border: int) -> tuple[float, float]:
    """(PSNR, SSIM) on the BT.601 Y channel of two uint8 RGB images, ``border`` cropped."""
    y_out = shave(rgb_to_y(output), border)
    y_ref = shave(rgb_to_y(reference), border)
    return psnr(y_out, y_ref), ssim(y_out, y_ref)


def l1(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 images of one shape, on the [0, 1] scale."""
    if a.shape != b.shape:
        raise ValueError(f"l1: shapes differ, {a.shape} vs {b.shape}")
    return float(np.mean(np.abs(a.astype(np.float64) - b.astype(np.float64)))) / 255.0
