"""The adversarial objective of a training step, assembled from a ``GANConfig``."""

from __future__ import annotations

import torch
from torch import Tensor

from translate.config import GANConfig
from translate.losses.adversarial import AdversarialLoss, Logits, adversarial_loss, logit_scales
from translate.losses.regularizers import Discriminator, gradient_penalty, r1_penalty, r2_penalty

__all__ = ["GANObjective"]


def _mean_logit(logits: Logits) -> Tensor:
    """Mean logit, averaged over scales like the losses (a diagnostic for the logs)."""
    return torch.stack([s.detach().float().mean() for s in logit_scales(logits)]).mean()


def _to_floats(values: dict[str, Tensor]) -> dict[str, float]:
    # One stack + tolist is a single device sync instead of one .item() per entry.
    numbers = torch.stack([v.detach().float().reshape(()) for v in values.values()]).tolist()
    return dict(zip(values, numbers, strict=True))


class GANObjective:
    """Discriminator and generator losses of the configured GAN family and regularisers.

    The discriminator loss is the family's ``d_loss`` plus, when their weights are positive,
    ``gp_weight * GP`` (Gulrajani et al. 2017, Eq. 3), ``r1_gamma / 2 * R1`` and
    ``r2_gamma / 2 * R2`` (Mescheder et al. 2018, Eqs. 9-10). ``real`` and ``fake`` are whatever
    the discriminator takes (conditional callers concatenate the condition). The objective holds
    no device or optimiser state.
    """

    def __init__(self, config: GANConfig | None = None) -> None:
        self.config = config if config is not None else GANConfig()
        self.adversarial: AdversarialLoss = adversarial_loss(
            self.config.gan_loss, label_smoothing=self.config.label_smoothing
        )
        self.gp_weight = float(self.config.effective_gp_weight)
        self.r1_gamma = float(self.config.r1_gamma)
        self.r2_gamma = float(self.config.r2_gamma)

    @property
    def relativistic(self) -> bool:
        """Whether ``generator_loss`` needs real data."""
        return self.adversarial.relativistic

    def discriminator_loss(
        self,
        D: Discriminator,  # noqa: N803 - the papers' name for the discriminator
        real: Tensor,
        fake: Tensor,
    ) -> tuple[Tensor, dict[str, float]]:
        """Total discriminator loss and its float logs.

        ``fake`` is detached here so the D step never backpropagates into G. Logs: ``D_loss``
        (total), ``D_adv``, ``D_real`` / ``D_fake`` (mean logits), and ``gp`` / ``r1`` / ``r2``
        (unweighted penalties) for the active regularisers only.
        """
        fake = fake.detach()
        real_logits = D(real)
        fake_logits = D(fake)
        adv = self.adversarial.d_loss(real_logits, fake_logits)
        total = adv
        logs: dict[str, Tensor] = {
            "D_adv": adv,
            "D_real": _mean_logit(real_logits),
            "D_fake": _mean_logit(fake_logits),
        }
        if self.gp_weight > 0:
            gp = gradient_penalty(D, real, fake)
            total = total + self.gp_weight * gp
            logs["gp"] = gp
        if self.r1_gamma > 0:
            r1 = r1_penalty(D, real)
            total = total + 0.5 * self.r1_gamma * r1
            logs["r1"] = r1
        if self.r2_gamma > 0:
            r2 = r2_penalty(D, fake)
            total = total + 0.5 * self.r2_gamma * r2
            logs["r2"] = r2
        logs["D_loss"] = total
        return total, _to_floats(logs)

    def generator_loss(
        self,
        D: Discriminator,  # noqa: N803
        fake: Tensor,
        real: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, float]]:
        """Generator adversarial loss and its log ``{"G_adv": ...}``.

        Relativistic families also need ``real``: its logits are computed without a graph,
        since they carry no gradient to G and would only cost memory.
        """
        real_logits: Logits | None = None
        if self.adversarial.relativistic:
            if real is None:
                raise ValueError(
                    f"the {self.adversarial.name} generator loss is relativistic: "
                    "pass the real batch (real=...)"
                )
            with torch.no_grad():
                real_logits = D(real.detach())
        loss = self.adversarial.g_loss(D(fake), real_logits)
        return loss, _to_floats({"G_adv": loss})

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.adversarial!r}, gp_weight={self.gp_weight}, "
            f"r1_gamma={self.r1_gamma}, r2_gamma={self.r2_gamma})"
        )
