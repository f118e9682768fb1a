"""Drawing a generating model's latents from its prior, with the truncation trick.

The truncation trick (Brock et al. 2019, "Large Scale GAN Training for High Fidelity Natural
Image Synthesis", Sec. 3.1) trades diversity for fidelity: a normal latent is drawn truncated to
[-T, T] (``truncated_normal``); a uniform one (``Plugin.latent_prior``: bigan's U(-1, 1)) from
U(-T, T) (``truncated_uniform``), what resampling entries with |z| > T until none is gives.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from translate.errors import ConfigError

__all__ = ["slerp", "truncated_normal", "truncated_uniform"]


def truncated_normal(
    shape: tuple[int, ...], truncation: float | None, generator: torch.Generator
) -> Tensor:
    """N(0, 1) samples of ``shape`` (float32); with ``truncation`` T, N(0, 1) truncated to
    [-T, T], drawn by its inverse CDF in constant time: with v ~ U(-1, 1),
    z = sqrt(2) erfinv(v erf(T / sqrt(2))), i.e. Phi^-1 of a uniform on [Phi(-T), Phi(T)],
    written with erf so that it stays exact near 0 (1 - 2 Phi(-T) would round to 0 for a
    small T) and computed in float64."""
    if truncation is None:
        return torch.randn(shape, generator=generator)
    if not truncation > 0:
        raise ConfigError(f"truncation: must be > 0, got {truncation:g}")
    u = torch.rand(shape, generator=generator, dtype=torch.float64)  # [0, 1)
    t = torch.tensor(float(truncation), dtype=torch.float64)
    half = torch.special.erf(t / math.sqrt(2.0))  # P(|z| <= T), in (0, 1]
    z = math.sqrt(2.0) * torch.special.erfinv((2.0 * u - 1.0) * half)
    # rounding (and erfinv(-1) = -inf when u = 0) must not leave [-T, T]
    return z.clamp(-t, t).to(torch.float32)


def truncated_uniform(
    shape: tuple[int, ...], truncation: float | None, generator: torch.Generator
) -> Tensor:
    """U(-1, 1) samples of ``shape``; with ``truncation`` T, U(-min(T, 1), min(T, 1))."""
    if truncation is not None and not truncation > 0:
        raise ConfigError(f"truncation: must be > 0, got {truncation:g}")
    bound = min(1.0, truncation) if truncation is not None else 1.0
    return (torch.rand(shape, generator=generator) * 2 - 1) * bound


def slerp(a: Tensor, b: Tensor, t: Tensor, eps: float = 1e-7) -> Tensor:
    """Spherical interpolation between latents ``a`` and ``b`` (per row, over all but the
    batch dimension) at fractions ``t`` (broadcast): ``sin((1-t) O) / sin O * a + sin(t O) /
    sin O * b``, O the angle between them; linear when they are (anti)parallel."""
    fa, fb = a.flatten(1), b.flatten(1)
    cos = (fa * fb).sum(1) / (fa.norm(dim=1) * fb.norm(dim=1)).clamp_min(eps)
    omega = torch.arccos(cos.clamp(-1 + eps, 1 - eps)).view(-1, *([1] * (a.ndim - 1)))
    so = torch.sin(omega)
    out = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / so
    return torch.where(so.abs() < 1e-4, torch.lerp(a, b, t), out)
