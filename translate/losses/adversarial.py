"""Adversarial loss families: one class per GAN objective behind a common interface.

Every family turns raw discriminator logits into a discriminator loss (``d_loss``) and a
generator loss (``g_loss``); both are minimised. Logits are a tensor of any shape (``(B,)``,
``(B, 1)``, ``(B, 1, h, w)`` for PatchGAN) or a list of such tensors, one per scale of a
multi-scale discriminator. Each loss is a mean over the logit elements of a scale, and a list is
the mean over scales of the per-scale loss; relativistic families pair real and fake scale by
scale.

Reference values in the docstrings use ``softplus(x) = log(1 + exp(x))``, so that
``-log(sigmoid(x)) = softplus(-x)`` and ``-log(1 - sigmoid(x)) = softplus(x)``: the losses are
written with softplus / BCE-with-logits because ``log(sigmoid(x))`` underflows for large ``|x|``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Protocol, TypeAlias, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor

Logits: TypeAlias = Tensor | Sequence[Tensor]
"""Discriminator output: one logit tensor, or one per scale of a multi-scale discriminator."""

__all__ = [
    "ADVERSARIAL_LOSSES",
    "AdversarialLoss",
    "HingeLoss",
    "LeastSquaresLoss",
    "Logits",
    "MinimaxLoss",
    "NonSaturatingLoss",
    "RelativisticAverageLoss",
    "RelativisticPairingLoss",
    "WassersteinGPLoss",
    "WassersteinLoss",
    "adversarial_loss",
    "logit_scales",
]


def logit_scales(logits: Logits, role: str = "logits") -> list[Tensor]:
    """The per-scale logit tensors of a discriminator output, half precision promoted to float32.

    ``role`` names the argument in error messages.
    """
    if isinstance(logits, Tensor):
        scales = [logits]
    elif isinstance(logits, (list, tuple)):
        scales = list(logits)
    else:
        raise TypeError(
            f"{role}: expected a Tensor or a list of Tensors, got {type(logits).__name__}"
        )
    if not scales:
        raise ValueError(f"{role}: empty list of discriminator scales")
    for i, scale in enumerate(scales):
        if not isinstance(scale, Tensor):
            raise TypeError(f"{role}[{i}]: expected a Tensor, got {type(scale).__name__}")
        if scale.numel() == 0:
            raise ValueError(f"{role}[{i}]: empty logit tensor")
    # log/exp of bf16/fp16 logits (autocast) loses most of the loss's precision; the loss is a
    # handful of elementwise ops on small tensors, so computing it in float32 costs nothing.
    return [s.float() if s.dtype in (torch.float16, torch.bfloat16) else s for s in scales]


def _mean_over_scales(per_scale: Callable[..., Tensor], *groups: list[Tensor]) -> Tensor:
    """Apply ``per_scale`` to the i-th tensor of each group and average over scales."""
    counts = {len(g) for g in groups}
    if len(counts) != 1:
        raise ValueError(
            "real and fake logits have different numbers of discriminator scales: "
            + " vs ".join(str(len(g)) for g in groups)
        )
    losses = [per_scale(*scale) for scale in zip(*groups, strict=True)]
    if len(losses) == 1:  # the common single-scale case: skip the stack
        return losses[0]
    return torch.stack(losses).mean()


def _check_label_smoothing(value: float) -> float:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {value}")
    return float(value)


@runtime_checkable
class AdversarialLoss(Protocol):
    """The interface every adversarial loss family implements.

    ``relativistic`` families compare real and fake logits, so their ``g_loss`` needs the
    discriminator's logits on real data as well.
    """

    name: str
    relativistic: bool

    def d_loss(self, real_logits: Logits, fake_logits: Logits) -> Tensor:
        """Discriminator loss (minimised) from logits on real and on generated data."""
        ...

    def g_loss(self, fake_logits: Logits, real_logits: Logits | None = None) -> Tensor:
        """Generator loss (minimised) from logits on generated (and, if relativistic, real) data."""
        ...


class _Absolute:
    """Families with D loss E[real_term(D(x))] + E[fake_term(D(G(z)))], G loss E[gen_term(D(G(z)))].

    ``g_loss`` accepts ``real_logits`` for interface compatibility and ignores it: these
    discriminators judge each sample on its own.
    """

    name: str
    relativistic: bool = False
    supports_label_smoothing: bool = False

    def _real_term(self, real: Tensor) -> Tensor:
        raise NotImplementedError

    def _fake_term(self, fake: Tensor) -> Tensor:
        raise NotImplementedError

    def _gen_term(self, fake: Tensor) -> Tensor:
        raise NotImplementedError

    def d_loss(self, real_logits: Logits, fake_logits: Logits) -> Tensor:
        return _mean_over_scales(
            lambda r, f: self._real_term(r) + self._fake_term(f),
            logit_scales(real_logits, "real_logits"),
            logit_scales(fake_logits, "fake_logits"),
        )

    def g_loss(self, fake_logits: Logits, real_logits: Logits | None = None) -> Tensor:
        return _mean_over_scales(self._gen_term, logit_scales(fake_logits, "fake_logits"))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MinimaxLoss(_Absolute):
    """The original, saturating GAN game (Goodfellow et al. 2014, Eq. 1).

    D maximises ``log D(x) + log(1 - D(G(z)))`` with ``D = sigmoid(logit)``, i.e. minimises
    ``softplus(-D(x)) + softplus(D(G(z)))`` (binary cross-entropy, real = 1, fake = 0).
    G minimises ``log(1 - D(G(z))) = -softplus(D(G(z)))``: its gradient vanishes when D confidently
    rejects the fakes, which is why ``nonsaturating`` is the practical default.

    With one-sided label smoothing ``s`` (Salimans et al. 2016, Sec. 3.4) the real target of the
    D loss is ``1 - s``; fake targets stay 0 so D is not rewarded for scoring fakes as real.
    """

    name = "minimax"
    supports_label_smoothing = True

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = _check_label_smoothing(label_smoothing)

    def _real_term(self, real: Tensor) -> Tensor:
        if not self.label_smoothing:
            return F.softplus(-real).mean()
        target = torch.full_like(real, 1.0 - self.label_smoothing)
        return F.binary_cross_entropy_with_logits(real, target)

    def _fake_term(self, fake: Tensor) -> Tensor:
        return F.softplus(fake).mean()

    def _gen_term(self, fake: Tensor) -> Tensor:
        return -F.softplus(fake).mean()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(label_smoothing={self.label_smoothing})"


class NonSaturatingLoss(MinimaxLoss):
    """Non-saturating GAN (Goodfellow et al. 2014, Sec. 3, the alternative to Eq. 1).

    D loss as in ``minimax``. G maximises ``log D(G(z))`` instead, i.e. minimises
    ``softplus(-D(G(z)))``: same fixed point, but strong gradients early in training when D
    rejects the fakes.
    """

    name = "nonsaturating"

    def _gen_term(self, fake: Tensor) -> Tensor:
        return F.softplus(-fake).mean()


class LeastSquaresLoss(_Absolute):
    """Least-squares GAN (Mao et al. 2017, Eq. 2 with the 0-1-1 coding a = 0, b = c = 1).

    D minimises ``0.5 * E[(D(x) - 1)^2] + 0.5 * E[D(G(z))^2]`` (Eq. 2 exactly);
    G minimises ``E[(D(G(z)) - 1)^2]``. Eq. 2 also halves the G loss; like the pix2pix/CycleGAN
    reference implementation we drop that 1/2 (plain mean squared error), which only doubles
    G's gradient. One-sided label smoothing moves the real target to ``1 - s``.
    """

    name = "lsgan"
    supports_label_smoothing = True

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = _check_label_smoothing(label_smoothing)

    def _real_term(self, real: Tensor) -> Tensor:
        return 0.5 * (real - (1.0 - self.label_smoothing)).square().mean()

    def _fake_term(self, fake: Tensor) -> Tensor:
        return 0.5 * fake.square().mean()

    def _gen_term(self, fake: Tensor) -> Tensor:
        return (fake - 1.0).square().mean()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(label_smoothing={self.label_smoothing})"


class HingeLoss(_Absolute):
    """Hinge GAN (Lim & Ye 2017, Geometric GAN; Miyato et al. 2018, SN-GAN Sec. 4).

    D minimises ``relu(1 - D(x)) + relu(1 + D(G(z)))``: samples outside the margin no longer
    push D, which keeps the logits bounded. G minimises ``-D(G(z))``.
    """

    name = "hinge"

    def _real_term(self, real: Tensor) -> Tensor:
        return F.relu(1.0 - real).mean()

    def _fake_term(self, fake: Tensor) -> Tensor:
        return F.relu(1.0 + fake).mean()

    def _gen_term(self, fake: Tensor) -> Tensor:
        return -fake.mean()


class WassersteinLoss(_Absolute):
    """Wasserstein critic loss with weight clipping, WGAN (Arjovsky et al. 2017, Algorithm 1).

    The critic minimises ``E[D(G(z))] - E[D(x)]``, G minimises ``-E[D(G(z))]``. The loss is only
    meaningful with a Lipschitz constraint on D; for this family the engine clamps the critic's
    parameters to ``[-c, c]`` after every critic step (``clip_value``, default 0.01) and, unless
    told otherwise, trains with RMSProp at 5e-5 and 5 critic steps per generator step.
    """

    name = "wgan"

    def _real_term(self, real: Tensor) -> Tensor:
        return -real.mean()

    def _fake_term(self, fake: Tensor) -> Tensor:
        return fake.mean()

    def _gen_term(self, fake: Tensor) -> Tensor:
        return -fake.mean()


class WassersteinGPLoss(WassersteinLoss):
    """Wasserstein critic loss with gradient penalty, WGAN-GP (Gulrajani et al. 2017, Eq. 3).

    Same critic and generator losses as ``wgan``; the Lipschitz constraint is the one-centred
    penalty on real/fake interpolates that ``GANObjective`` adds (``gp_weight``, default 10).
    """

    name = "wgan-gp"


class _Relativistic:
    """Families that score how much more real one sample looks than another.

    ``_prefer(a, b)`` is the loss that is low when ``a`` looks more real than ``b``; D prefers
    real over fake, G the reverse, so both losses share it with the arguments swapped.
    """

    name: str
    relativistic: bool = True
    supports_label_smoothing: bool = False

    def _prefer(self, a: Tensor, b: Tensor) -> Tensor:
        raise NotImplementedError

    def d_loss(self, real_logits: Logits, fake_logits: Logits) -> Tensor:
        return _mean_over_scales(
            self._prefer,
            logit_scales(real_logits, "real_logits"),
            logit_scales(fake_logits, "fake_logits"),
        )

    def g_loss(self, fake_logits: Logits, real_logits: Logits | None = None) -> Tensor:
        if real_logits is None:
            raise ValueError(
                f"the {self.name} generator loss is relativistic: it needs the discriminator's "
                "logits on real data (real_logits)"
            )
        return _mean_over_scales(
            self._prefer,
            logit_scales(fake_logits, "fake_logits"),
            logit_scales(real_logits, "real_logits"),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RelativisticPairingLoss(_Relativistic):
    """Relativistic pairing GAN, RpGAN.

    Jolicoeur-Martineau 2018 (RSGAN, Sec. 4.1); Huang et al. 2024 (R3GAN, Sec. 2).

    D minimises ``softplus(-(D(x) - D(G(z))))`` and G ``softplus(-(D(G(z)) - D(x)))``, pairing the
    i-th real with the i-th fake logit, so real and fake logits of a scale must have one shape.
    """

    name = "rpgan"

    def _prefer(self, a: Tensor, b: Tensor) -> Tensor:
        if a.shape != b.shape:
            raise ValueError(
                f"{self.name} pairs real and fake logits elementwise; shapes differ: "
                f"{tuple(a.shape)} vs {tuple(b.shape)}"
            )
        return F.softplus(b - a).mean()


class RelativisticAverageLoss(_Relativistic):
    """Relativistic average GAN, RaSGAN (Jolicoeur-Martineau 2018, Sec. 4.2).

    Each logit is compared with the mean logit of the other side (over all elements of the
    scale, i.e. batch and patches):
    D minimises ``(BCE(D(x) - mean D(G(z)), 1) + BCE(D(G(z)) - mean D(x), 0)) / 2``; G minimises
    the same with the labels swapped. The paper writes the sum; ESRGAN's code (and BasicSR's,
    whose adversarial weight 5e-3 ESRGAN's recipe assumes) averages the two terms, and so do we,
    so that ESRGAN's lambda gives ESRGAN's gradient.
    """

    name = "ragan"

    def _prefer(self, a: Tensor, b: Tensor) -> Tensor:
        # BCE(z, 1) = softplus(-z) and BCE(z, 0) = softplus(z).
        return 0.5 * (F.softplus(b.mean() - a).mean() + F.softplus(b - a.mean()).mean())


ADVERSARIAL_LOSSES: dict[str, type[AdversarialLoss]] = {
    cls.name: cls
    for cls in (
        MinimaxLoss,
        NonSaturatingLoss,
        LeastSquaresLoss,
        WassersteinLoss,
        WassersteinGPLoss,
        HingeLoss,
        RelativisticPairingLoss,
        RelativisticAverageLoss,
    )
}
"""Every adversarial loss family by its ``GANConfig.gan_loss`` name."""


def adversarial_loss(name: str, *, label_smoothing: float = 0.0) -> AdversarialLoss:
    """The adversarial loss family ``name`` (a key of ``ADVERSARIAL_LOSSES``).

    ``label_smoothing`` (one-sided, Salimans et al. 2016) is only defined for the families with
    a real target: minimax, nonsaturating and lsgan; asking for it elsewhere is an error rather
    than a silent no-op.
    """
    cls = ADVERSARIAL_LOSSES.get(name)
    if cls is None:
        close = difflib.get_close_matches(str(name), ADVERSARIAL_LOSSES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown adversarial loss {name!r}{hint} "
            f"(choose one of: {', '.join(ADVERSARIAL_LOSSES)})"
        )
    if label_smoothing:
        if not getattr(cls, "supports_label_smoothing", False):
            raise ValueError(
                f"label_smoothing only applies to minimax, nonsaturating and lsgan, not {name}"
            )
        return cls(label_smoothing=label_smoothing)  # type: ignore[call-arg]
    return cls()
