"""Gradient normalisation of a discriminator's output (GN-GAN).

Wu et al. 2021, "Gradient Normalization for Generative Adversarial Networks", Eq. 8:

    D_hat(x) = f(x) / (||grad_x f(x)||_2 + |f(x)|)

makes the discriminator piecewise 1-Lipschitz with ``|D_hat| <= 1`` for any architecture, without
constraining layers one by one. The normaliser depends on the input, so every forward pass takes
an input gradient with ``create_graph=True`` (a double backward when the loss is differentiated).

The paper's ``f`` returns one logit per image. For patch discriminators (``(B, 1, h, w)``) and
multi-scale ones (a list), each scale's logits of a sample are normalised by the gradient norm
of that sample's mean logit on the scale; for one logit per image this is exactly Eq. 8.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["gradient_normalized"]

Logits = Tensor | Sequence[Tensor]


def _normalise(f: Tensor, x: Tensor, create_graph: bool) -> Tensor:
    f32 = f.float()
    per_sample = f32.reshape(f32.shape[0], -1).mean(1)  # (B,): each sample's mean logit
    # retain: the scales of a multi-scale D share the graph of their common input
    (grad,) = torch.autograd.grad(per_sample.sum(), x, create_graph=create_graph, retain_graph=True)
    norm = torch.linalg.vector_norm(grad.float().reshape(grad.shape[0], -1), dim=1)
    norm = norm.view(-1, *([1] * (f.ndim - 1)))
    # the clamp only matters where f = 0 and its gradient vanishes at once (0 / 0)
    return f32 / (norm + f32.abs()).clamp_min(1e-12)


def gradient_normalized(D: Callable[[Tensor], Logits], x: Tensor) -> Logits:  # noqa: N803
    """``D(x)`` normalised by Eq. 8 of Wu et al. 2021, with ``D``'s output structure.

    Works under ``torch.no_grad()`` (the result is then detached) and for inputs that do not
    require grad (the input gradient is taken through a detached leaf; the graph to ``D``'s
    parameters is kept when grad mode is on).
    """
    keep_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        leaf = x if x.requires_grad else x.detach().requires_grad_(True)
        out = D(leaf)
        if isinstance(out, Tensor):
            result: Logits = _normalise(out, leaf, keep_graph)
        else:
            result = [_normalise(f, leaf, keep_graph) for f in out]
    if keep_graph:
        return result
    if isinstance(result, Tensor):
        return result.detach()
    return [r.detach() for r in result]
