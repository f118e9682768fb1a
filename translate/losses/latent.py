"""Terms on latent codes, for the families that give many answers per input.

* ``kl_normal`` -- the KL divergence of a diagonal Gaussian N(mu, diag(exp(logvar))) from
  N(0, I), in closed form (Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014,
  App. B): ``KL = 1/2 * sum_d (mu_d^2 + exp(logvar_d) - 1 - logvar_d)``, summed over the code's
  dimensions and averaged over the batch. BicycleGAN's cVAE-GAN term (Zhu et al., "Toward
  Multimodal Image-to-Image Translation", NeurIPS 2017, Eq. 3, weight lambda_KL = 0.01) and
  UNIT's VAE terms (Liu et al. 2017, Eq. 3) use it.
* ``reparameterize`` -- ``z = mu + exp(logvar / 2) * eps`` with eps ~ N(0, I) (Kingma &
  Welling, Sec. 2.4), so the KL and the reconstruction both reach the encoder.
* ``latent_l1`` -- BicycleGAN's latent regression (cLR-GAN, Eq. 5: ``|| z - E(G(A, z)) ||_1``,
  weight lambda_latent = 0.5), the mean absolute error between a code and its recovery;
  MUNIT's content and style reconstruction terms are the same L1 (Huang et al. 2018, Eq. 3-4).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["kl_normal", "latent_l1", "reparameterize"]


def _check_codes(a: Tensor, b: Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.dim() < 2 or a.numel() == 0:
        raise ValueError(f"{what}: expected (B, D, ...) codes, got shape {tuple(a.shape)}")


def kl_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample, summed over the code, mean over the batch.

    ``mu``, ``logvar``: (B, D) (or (B, D, ...): every non-batch dimension is summed). The
    official BicycleGAN code sums over the batch as well (batch size 2 there); the mean keeps
    lambda_KL independent of the batch size."""
    _check_codes(mu, logvar, "kl_normal")
    per_element = mu.pow(2) + logvar.exp() - 1.0 - logvar
    return 0.5 * per_element.flatten(1).sum(1).mean()


def reparameterize(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """A draw ``mu + exp(logvar / 2) * eps`` differentiable in mu and logvar."""
    _check_codes(mu, logvar, "reparameterize")
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


def latent_l1(recovered: Tensor, code: Tensor) -> Tensor:
    """Mean absolute error between a recovered code and the code used (B, D)."""
    _check_codes(recovered, code, "latent_l1")
    return (recovered - code).abs().mean()
