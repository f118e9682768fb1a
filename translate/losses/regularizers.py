"""Gradient penalties on the discriminator's input gradient.

Each penalty takes the discriminator as a callable ``D(x) -> logits | list[logits]`` and returns
an unweighted scalar; ``GANObjective`` applies the weights. The logits of all scales are summed
before differentiating, so the gradient is that of the summed discriminator outputs. Because
each sample's logits depend on that sample only, the gradient of the batch sum holds every
sample's own input gradient (this is not true with batch-coupling layers such as BatchNorm,
which is why Gulrajani et al. drop them from the critic).

A conditional discriminator sees ``cat([condition, image])``; with ``condition_channels`` the
penalty is on the gradient with respect to the image channels only, as the papers penalise
``grad_x D`` of the image ``x`` (the condition is given, not generated).

All penalties are differentiated with ``create_graph=True`` so that backpropagating the penalty
trains D, and run in float32 with autocast disabled: squared input gradients under- and overflow
in half precision.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from translate.losses.adversarial import Logits, logit_scales

Discriminator = Callable[[Tensor], Logits]
"""A discriminator: an input batch to raw logits (one tensor, or one per scale)."""

__all__ = ["Discriminator", "gradient_penalty", "r1_penalty", "r2_penalty"]


@contextlib.contextmanager
def _float32_grad_mode(device: torch.device) -> Iterator[None]:
    """Autocast off (penalties need float32) and grad on (they need a graph even from no_grad)."""
    with contextlib.ExitStack() as stack:
        if torch.amp.is_autocast_available(device.type):
            stack.enter_context(torch.autocast(device_type=device.type, enabled=False))
        stack.enter_context(torch.enable_grad())
        yield


def _full(x: Tensor) -> Tensor:
    """``x`` in float32 when it is half precision; float32 and float64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _check_batch(x: Tensor, role: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{role}: expected a Tensor, got {type(x).__name__}")
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"{role}: expected a non-empty batch, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{role}: expected a floating-point tensor, got {x.dtype}")


def _summed_logits(logits: Logits) -> Tensor:
    return torch.stack([scale.float().sum() for scale in logit_scales(logits)]).sum()


def _input_gradient(logits: Logits, x: Tensor, condition_channels: int = 0) -> Tensor:
    """d(sum of all logits)/d(image channels of x), kept differentiable so the penalty reaches
    D's parameters."""
    (grad,) = torch.autograd.grad(_summed_logits(logits), x, create_graph=True)
    return grad[:, condition_channels:].float().reshape(x.shape[0], -1)


def gradient_penalty(
    D: Discriminator,  # noqa: N803 - the papers' name for the discriminator
    real: Tensor,
    fake: Tensor,
    *,
    center: float = 1.0,
    generator: torch.Generator | None = None,
    condition_channels: int = 0,
    eps: Tensor | None = None,
) -> Tensor:
    """Gradient penalty on interpolates (Gulrajani et al. 2017, WGAN-GP, Eq. 3).

    ``x_hat = eps * real + (1 - eps) * fake`` with one ``eps ~ U[0, 1]`` per sample, and the
    penalty is ``mean_i (||grad_x D(x_hat_i)||_2 - center)^2``. ``center=1`` is WGAN-GP's
    one-centred penalty; ``center=0`` gives the zero-centred variant. ``real`` and ``fake`` are
    detached: the penalty constrains D only. ``generator`` seeds the draw of ``eps``, or
    ``eps`` (shape ``(B,)``) gives the weights themselves.
    """
    _check_batch(real, "real")
    _check_batch(fake, "fake")
    if real.shape != fake.shape:
        raise ValueError(
            "real and fake must have the same shape, "
            f"got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    with _float32_grad_mode(real.device):
        real32 = _full(real.detach())
        fake32 = _full(fake.detach())
        if eps is None:
            eps = torch.rand(real.shape[0], generator=generator, device=real.device)
        eps = eps.to(real.device, real32.dtype).view(-1, *([1] * (real.ndim - 1)))
        x_hat = (eps * real32 + (1.0 - eps) * fake32).requires_grad_(True)
        grad = _input_gradient(D(x_hat), x_hat, condition_channels)
        # vector_norm's backward is 0 (not NaN) at a zero gradient, so no epsilon is needed.
        norms = torch.linalg.vector_norm(grad, dim=1)
        return (norms - center).square().mean()


def _zero_centred(
    D: Discriminator,  # noqa: N803
    x: Tensor,
    logits: Logits | None,
    role: str,
    condition_channels: int = 0,
) -> Tensor:
    """mean_i ||grad_x D(x_i)||^2, shared by R1 (real x) and R2 (fake x)."""
    _check_batch(x, role)
    if logits is None:
        with _float32_grad_mode(x.device):
            leaf = _full(x.detach()).requires_grad_(True)
            grad = _input_gradient(D(leaf), leaf, condition_channels)
    else:
        # Reusing the logits of the adversarial loss saves a forward pass; the gradient is then
        # taken through that forward, at whatever precision it ran.
        if not x.requires_grad:
            raise ValueError(
                f"{role} must have requires_grad=True and be the input that the logits "
                "were computed from"
            )
        with _float32_grad_mode(x.device):
            grad = _input_gradient(logits, x, condition_channels)
    return grad.square().sum(dim=1).mean()


def r1_penalty(
    D: Discriminator,  # noqa: N803
    real: Tensor,
    *,
    logits: Logits | None = None,
    condition_channels: int = 0,
) -> Tensor:
    """R1 penalty (Mescheder et al. 2018, Eq. 9): ``mean_i ||grad_x D(x_i)||^2`` on real data.

    Returned without Eq. 9's ``gamma / 2`` factor; ``GANObjective`` multiplies by
    ``r1_gamma / 2``. By default ``real`` is detached and D is run again in float32; pass the
    ``logits`` that D already computed from ``real`` (with ``real.requires_grad_(True)`` set before
    that forward) to skip the second forward pass.
    """
    return _zero_centred(D, real, logits, "real", condition_channels)


def r2_penalty(
    D: Discriminator,  # noqa: N803
    fake: Tensor,
    *,
    logits: Logits | None = None,
    condition_channels: int = 0,
) -> Tensor:
    """R2 penalty (Mescheder et al. 2018, Eq. 10): ``mean_i ||grad_x D(x_i)||^2`` on generated data.

    Returned without the ``gamma / 2`` factor (``GANObjective`` applies ``r2_gamma / 2``). ``fake``
    is detached so the penalty does not reach G; with precomputed ``logits``, pass a detached
    leaf ``fake`` with ``requires_grad_(True)`` for the same reason.
    """
    return _zero_centred(D, fake, logits, "fake", condition_channels)
