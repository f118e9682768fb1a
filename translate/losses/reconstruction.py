"""Pixel reconstruction losses between a translated image and its target."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["charbonnier_loss", "l1_loss"]


def _check_pair(a: Tensor, b: Tensor) -> None:
    # Broadcasting a (B, C, H, W) against a (C, H, W) or a mis-cropped target silently computes
    # the wrong loss, so shapes must match exactly.
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.numel() == 0:
        raise ValueError("empty tensors")


def l1_loss(a: Tensor, b: Tensor) -> Tensor:
    """Mean absolute error ``mean |a - b|`` (pix2pix's L1 term, Isola et al. 2017, Eq. 3)."""
    _check_pair(a, b)
    return (a - b).abs().mean()


def charbonnier_loss(a: Tensor, b: Tensor, eps: float = 1e-3) -> Tensor:
    """Charbonnier loss ``mean sqrt((a - b)^2 + eps^2)``.

    Charbonnier et al. 1994; used as a robust L1 by Lai et al. 2017 (LapSRN, Sec. 3.2).

    A differentiable L1: quadratic within ``eps`` of zero, so its gradient does not flip sign
    abruptly at a perfect match. ``eps = 1e-3`` is LapSRN's value.
    """
    _check_pair(a, b)
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    diff = a - b
    return torch.sqrt(diff * diff + eps * eps).mean()
