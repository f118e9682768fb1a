"""The cycle-consistency and identity terms of unpaired translation.

Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial
Networks" (CycleGAN): Eq. 2 and Sec. 5.2. Shared by every family that translates both ways
without pairs (CycleGAN; MUNIT reuses the same L1 terms; CUT's identity term is PatchNCE's
instead, ``translate.losses.patchnce``). Each is one direction; the
plugin weighs and sums them (CycleGAN: ``lambda_cycle`` and ``lambda_identity * lambda_cycle``).
Generator outputs are compared in float32 (they may come out of autocast in half precision).
"""

from __future__ import annotations

from torch import Tensor

from translate.losses.reconstruction import l1_loss

__all__ = ["cycle_loss", "identity_loss"]


def cycle_loss(reconstructed: Tensor, real: Tensor) -> Tensor:
    """Cycle-consistency loss, Eq. 2: ``||F(G(x)) - x||_1`` (mean absolute error) between the
    image translated there and back (``reconstructed``) and the ``real`` one it started as."""
    return l1_loss(reconstructed.float(), real)


def identity_loss(same: Tensor, real: Tensor) -> Tensor:
    """Identity loss, Sec. 5.2 (after Taigman et al. 2017): ``||G(y) - y||_1``, a generator
    given an image of its own output domain (``same = G(y)``) should leave it unchanged; keeps
    colours that need not change."""
    return l1_loss(same.float(), real)
