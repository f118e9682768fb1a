"""The matching-aware discriminator loss (GAN-CLS; Reed et al. 2016, "Generative Adversarial
Text to Image Synthesis", Alg. 1): D sees three kinds of (image, text) pairs, real images with
their own text (real), generated images with their text (fake) and real images with another
sample's text (wrong); the last two are both scored as fake,

    L_D = d_real(s_r) + (d_fake(s_f) + d_fake(s_w)) / 2,

StackGAN's form (Zhang et al. 2017; its official code's ``errD_real + (errD_wrong +
errD_fake) * 0.5``). The mismatched text is the batch's own rolled by one (sample i with
sample i-1's text), so every real image gets a wrong caption and the batch size is kept.

Written through the core objective (``GANObjective.discriminator_loss``) as the mean of the
(real, fake) and (real, wrong) losses, which is the formula above for every absolute family
(minimax, hinge, least squares...) and carries the configured penalties (R1, GP) at their
weight; the text rides in the first ``condition_channels`` of D's input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

__all__ = ["matching_aware_d_loss", "mismatched"]


def mismatched(text: Tensor) -> Tensor:
    """Each sample's text replaced by the previous sample's (the batch rolled by one)."""
    return text.roll(1, 0)


def matching_aware_d_loss(
    objective: Any,
    D: Callable[[Tensor], Any],  # noqa: N803
    real: Tensor,
    fake: Tensor,
    text: Tensor,
    join: Callable[[Tensor, Tensor], Tensor],
    *,
    condition_channels: int,
) -> tuple[Tensor, dict[str, float]]:
    """GAN-CLS's D loss of ``real`` and ``fake`` images (B, C, H, W) with their ``text``
    (B, E); ``join(images, text)`` makes D's input. Logs the objective's, plus ``D_wrong``
    (the mean logit of the mismatched pairs)."""
    real_in = join(real, text)
    loss_fake, logs = objective.discriminator_loss(
        D, real_in, join(fake, text), condition_channels=condition_channels
    )
    loss_wrong, logs_w = objective.discriminator_loss(
        D, real_in, join(real, mismatched(text)), condition_channels=condition_channels
    )
    total = 0.5 * (loss_fake + loss_wrong)
    # floats, or device scalars under --deferred-sync (the objective's ``logs``)
    return total, {**logs, **objective.logs({"D_loss": total}), "D_wrong": logs_w["D_fake"]}
