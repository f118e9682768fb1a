"""Losses of the GAN objective: adversarial families, gradient penalties, reconstruction terms.

``GANObjective`` assembles them from a ``GANConfig``; the pieces are public for plugins that
build their own objective.
"""

from __future__ import annotations

from translate.losses.adversarial import ADVERSARIAL_LOSSES, AdversarialLoss, adversarial_loss
from translate.losses.objective import GANObjective
from translate.losses.reconstruction import charbonnier_loss, l1_loss
from translate.losses.regularizers import gradient_penalty, r1_penalty, r2_penalty

__all__ = [
    "ADVERSARIAL_LOSSES",
    "AdversarialLoss",
    "GANObjective",
    "adversarial_loss",
    "charbonnier_loss",
    "gradient_penalty",
    "l1_loss",
    "r1_penalty",
    "r2_penalty",
]
