"""Periodic (lazy) terms: a regulariser computed every k steps and weighted by k.

Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN" (Sec. 3.1, "lazy
regularization"): a regularisation term changes slowly, so it can be evaluated once every ``k``
minibatches instead of every one; multiplying it by ``k`` keeps its expected contribution to the
gradient the same. StyleGAN2 uses k = 16 for R1 and k = 4 for path-length regularisation, and
StyleGAN2-ADA adjusts its augmentation probability every 4 steps (an update, not a term: it uses
``due`` only). The rule is written once here for every plugin and for ``GANObjective``'s lazy
gradient penalties.

Because a regularised step is a larger step, the official code also shrinks Adam's learning rate
and momentum by ``ratio = k / (k + 1)`` for a network that is regularised lazily
(``lazy_adam``): ``lr * ratio`` and ``beta ** ratio``.
"""

from __future__ import annotations

__all__ = ["due", "lazy_adam", "lazy_scale"]


def _check_interval(interval: int) -> None:
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise ValueError(f"interval must be a positive integer, got {interval!r}")


def due(step: int, interval: int) -> bool:
    """Whether a term of period ``interval`` runs at ``step`` (0-based): steps 0, k, 2k, ..."""
    _check_interval(interval)
    return step % interval == 0


def lazy_scale(step: int, interval: int) -> float:
    """The weight of a lazy term at ``step``: ``interval`` on the steps it runs, 0 otherwise
    (the term is then not computed at all), so its mean over any ``interval`` steps is 1."""
    return float(interval) if due(step, interval) else 0.0


def lazy_adam(
    lr: float, betas: tuple[float, float], interval: int
) -> tuple[float, tuple[float, float]]:
    """Adam's ``lr`` and ``betas`` for a network regularised every ``interval`` steps
    (StyleGAN2's official code): ``lr * r`` and ``(beta1 ** r, beta2 ** r)`` with
    ``r = k / (k + 1)``; unchanged for ``interval`` 1."""
    _check_interval(interval)
    if interval == 1:
        return lr, betas
    ratio = interval / (interval + 1)
    return lr * ratio, (betas[0] ** ratio, betas[1] ** ratio)
