"""Losses of the GAN objective: adversarial families, gradient penalties, DiffAugment, feature
matching, reconstruction terms, cycle-consistency and identity terms, PatchNCE (CUT),
StackGAN++'s colour consistency.

``GANObjective`` assembles them from a ``GANConfig``; the pieces are public for plugins that
build their own objective.
"""

from __future__ import annotations

from translate.losses.adversarial import ADVERSARIAL_LOSSES, AdversarialLoss, adversarial_loss
from translate.losses.augment import DiffAugment
from translate.losses.colour import colour_consistency_loss, colour_statistics
from translate.losses.cycle import cycle_loss, identity_loss
from translate.losses.objective import GANObjective, feature_matching_loss
from translate.losses.patchnce import PatchNCEHeads, multilayer_patchnce, patchnce_loss
from translate.losses.reconstruction import charbonnier_loss, l1_loss
from translate.losses.regularizers import gradient_penalty, r1_penalty, r2_penalty

__all__ = [
    "ADVERSARIAL_LOSSES",
    "AdversarialLoss",
    "DiffAugment",
    "GANObjective",
    "PatchNCEHeads",
    "adversarial_loss",
    "charbonnier_loss",
    "colour_consistency_loss",
    "colour_statistics",
    "cycle_loss",
    "feature_matching_loss",
    "gradient_penalty",
    "identity_loss",
    "l1_loss",
    "multilayer_patchnce",
    "patchnce_loss",
    "r1_penalty",
    "r2_penalty",
]
