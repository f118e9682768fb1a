"""Path-length regularisation (Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN", Sec. 3.2, Eq. 4).

A fixed-size step in the intermediate latent space W should change the image by a fixed amount,
whatever the direction: the penalty is ``E_{w, y} (||J_w^T y||_2 - a)^2`` with ``J_w`` the
Jacobian of the synthesis network at ``w``, ``y`` a random image with N(0, 1) pixels, and ``a``
an exponential moving average of the lengths ``||J_w^T y||_2`` (decay 0.01). ``J_w^T y`` is one
backward pass: the gradient of ``sum(g(w) * y)`` with respect to ``w``. The official code scales
``y`` by ``1 / sqrt(H * W)`` so the lengths do not grow with the resolution, and takes the length
over the style vectors' features, averaged over the layers (``w`` of shape (B, L, w_dim)).

Weight 2 (``gamma_pl = ln 2 / (r^2 (ln r - ln 2))`` of the paper at 1024 px), computed every 4
steps on half the batch (``translate.losses.lazy``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["path_length_penalty", "path_lengths"]


def path_lengths(images: Tensor, ws: Tensor, noise: Tensor | None = None) -> Tensor:
    """``||J_w^T y||`` per sample: ``images`` (B, C, H, W) made from ``ws`` (B, L, w_dim)
    (differentiably), ``y`` = ``noise`` (default N(0, 1)) / sqrt(H * W). Returns (B,), with a
    graph back to the generator (``create_graph``) so the penalty trains it."""
    if noise is None:
        noise = torch.randn_like(images)
    y = noise / math.sqrt(images.shape[2] * images.shape[3])
    (grad,) = torch.autograd.grad((images.float() * y.float()).sum(), ws, create_graph=True)
    return grad.float().square().sum(2).mean(1).sqrt()


def path_length_penalty(
    images: Tensor, ws: Tensor, pl_mean: Tensor, *, decay: float = 0.01, noise: Tensor | None = None
) -> Tensor:
    """The penalty ``mean((lengths - a)^2)``, unweighted. ``pl_mean`` (a scalar buffer, 0 at the
    start) is the running average ``a``: it moves first, ``a <- a + decay * (mean(lengths) - a)``
    (in place, no gradient), and the penalty is taken against the moved value."""
    if not 0 < decay <= 1:
        raise ValueError(f"decay must be in (0, 1], got {decay}")
    lengths = path_lengths(images, ws, noise)
    with torch.no_grad():
        pl_mean.copy_(pl_mean.lerp(lengths.mean().to(pl_mean.dtype), decay))
    return (lengths - pl_mean.detach().float()).square().mean()
