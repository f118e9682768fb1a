"""Gradient normalisation of a discriminator's output (GN-GAN).

Wu et al. 2021, "Gradient Normalization for Generative Adversarial Networks", Eq. 8:

    D_hat(x) = f(x) / (||grad_x f(x)||_2 + |f(x)|)

makes the discriminator piecewise 1-Lipschitz with ``|D_hat| <= 1`` for any architecture, without
constraining layers one by one. The normaliser depends on the input, so every forward pass takes
an input gradient with ``create_graph=True`` (a double backward when the loss is differentiated).

The paper's ``f`` returns one logit per image. A patch discriminator (``(B, 1, h, w)``) is made
such an ``f`` by averaging each sample's patch logits (the PatchGAN's own reading: the image's
score is the mean over its patches), and Eq. 8 normalises that mean by the gradient norm of that
same mean: the normalised output, one logit per sample (shape ``(B, 1, 1, 1)``), is then
1-Lipschitz as the paper's. (Dividing every patch logit by the gradient of the mean would not
be: a single patch's gradient can be many times the mean's.) A multi-scale discriminator (a
list) is normalised scale by scale.

Conditional discriminators see ``cat([condition, image])``; with ``condition_channels`` the
gradient norm is taken over the image channels only, the quantity the paper constrains.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["gradient_normalized"]

Logits = Tensor | Sequence[Tensor]


def _normalise(f: Tensor, x: Tensor, create_graph: bool, condition_channels: int) -> Tensor:
    f32 = f.float()
    per_sample = f32.reshape(f32.shape[0], -1).mean(1)  # (B,): each sample's mean logit
    # retain: the scales of a multi-scale D share the graph of their common input
    (grad,) = torch.autograd.grad(per_sample.sum(), x, create_graph=create_graph, retain_graph=True)
    grad = grad[:, condition_channels:]  # the image's gradient, not the condition's
    norm = torch.linalg.vector_norm(grad.float().reshape(grad.shape[0], -1), dim=1)
    # the clamp only matters where f = 0 and its gradient vanishes at once (0 / 0)
    normalised = per_sample / (norm + per_sample.abs()).clamp_min(1e-12)
    return normalised.view(-1, *([1] * (f.ndim - 1)))  # (B, 1, ..., 1): one logit per sample


def gradient_normalized(
    D: Callable[[Tensor], Logits],  # noqa: N803
    x: Tensor,
    *,
    condition_channels: int = 0,
) -> Logits:
    """``D(x)`` normalised by Eq. 8 of Wu et al. 2021: one logit per sample and scale.

    Works under ``torch.no_grad()`` (the result is then detached) and for inputs that do not
    require grad (the input gradient is taken through a detached leaf; the graph to ``D``'s
    parameters is kept when grad mode is on). The first ``condition_channels`` channels of ``x``
    are the condition of a conditional D: left out of the gradient norm.
    """
    keep_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        leaf = x if x.requires_grad else x.detach().requires_grad_(True)
        out = D(leaf)
        if isinstance(out, Tensor):
            result: Logits = _normalise(out, leaf, keep_graph, condition_channels)
        else:
            result = [_normalise(f, leaf, keep_graph, condition_channels) for f in out]
    if keep_graph:
        return result
    if isinstance(result, Tensor):
        return result.detach()
    return [r.detach() for r in result]
