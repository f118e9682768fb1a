"""StackGAN++'s colour-consistency regulariser (Zhang et al. 2018, "StackGAN++: Realistic Image
Synthesis with Stacked Generative Adversarial Networks", TPAMI, Sec. 4.3, Eq. 9): the images a
multi-scale generator draws of one sample at consecutive scales should share their colours,
so the mean mu and the covariance Sigma of each image's pixel colours are pulled together,

    L_C = lambda1 * ||mu_i - mu_{i-1}||^2 + lambda2 * ||Sigma_i - Sigma_{i-1}||_F^2,

with mu = sum_k x_k / N and Sigma = sum_k (x_k - mu)(x_k - mu)^T / N over the N pixels x_k
(colour vectors), lambda1 = 1 and lambda2 = 5 (the paper's values, also the official code's).

Written as the official code (``trainer.py``: ``compute_mean_covariance`` and the
``TRAIN.COEFF.COLOR_LOSS`` terms of ``train_Gnet``), which differs from Eq. 9 in three ways:
the squared norms are mean squared errors (``nn.MSELoss``: divided by the C mean entries and
the C x C covariance entries, and by the batch), the lower scale is detached (only the higher
image is pulled towards the lower one), and the pairs' terms are summed (each pair is a term
of its branch's loss, as in the paper's per-stage sum). The caller multiplies by the official
coefficient (``--colour-weight``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["COVARIANCE_WEIGHT", "MEAN_WEIGHT", "colour_consistency_loss", "colour_statistics"]

#: lambda1 and lambda2 of Eq. 9 (the official code's 1 and 5)
MEAN_WEIGHT, COVARIANCE_WEIGHT = 1.0, 5.0


def colour_statistics(images: Tensor) -> tuple[Tensor, Tensor]:
    """(B, C, H, W) -> the mean colour (B, C) and the colour covariance (B, C, C) of each
    image's pixels (divided by the number of pixels N, not N - 1)."""
    b, c = images.shape[:2]
    pixels = images.float().reshape(b, c, -1)  # (B, C, N)
    mu = pixels.mean(2)
    centred = pixels - mu[..., None]
    return mu, centred @ centred.transpose(1, 2) / pixels.shape[2]


def colour_consistency_loss(
    images: Sequence[Tensor],
    *,
    mean_weight: float = MEAN_WEIGHT,
    covariance_weight: float = COVARIANCE_WEIGHT,
) -> Tensor:
    """Sum over consecutive pairs (low to high) of ``images``, each (B, C, H_i, W_i), of
    ``mean_weight * MSE(mu_i, mu_{i-1}) + covariance_weight * MSE(Sigma_i, Sigma_{i-1})``,
    the lower image of each pair detached (no gradient reaches it through its pair)."""
    if len(images) < 2:
        raise ValueError(f"colour consistency needs at least two scales, got {len(images)}")
    stats = [colour_statistics(x) for x in images]
    total = images[0].new_zeros((), dtype=torch.float32)
    for (mu_low, cov_low), (mu, cov) in itertools.pairwise(stats):
        total = total + mean_weight * F.mse_loss(mu, mu_low.detach())
        total = total + covariance_weight * F.mse_loss(cov, cov_low.detach())
    return total
