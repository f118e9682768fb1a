"""Minibatch standard deviation layer (Karras et al. 2018, "Progressive Growing of GANs", Sec. 3).

The discriminator gets one extra feature: how much the samples of a small group differ from each
other, averaged over features and positions. A generator that collapses to a few outputs makes
this statistic small for its fakes, which D can then detect; G is pushed back towards variety.

``add_minibatch_std`` inserts the layer in front of a discriminator's last weighted layer(s)
(one per chain of layers, so every scale of a multi-scale D gets its own), widening that layer
by one input channel whose weights start at zero: the transformed D computes exactly what it
did before until training uses the new feature.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from translate.nn.surgery import has_spectral_norm, layer_chains, raw_weight

__all__ = ["MinibatchStdDev", "add_minibatch_std"]


def _group(batch: int, group_size: int) -> int:
    """The largest divisor of ``batch`` that is at most ``group_size``."""
    return next(d for d in range(min(group_size, batch), 0, -1) if batch % d == 0)


class MinibatchStdDev(nn.Module):
    """Append the group standard deviation as one constant feature (channel) per sample.

    The batch is split into groups of ``G = min(group_size, B)`` samples (the largest divisor of
    ``B`` not above ``group_size``), sample ``n`` being in group position ``n % (B / G)`` as in
    StyleGAN2; per group position, the standard deviation over the ``G`` samples is averaged over
    all features and positions. Input (B, C, H, W) -> (B, C + 1, H, W), or (B, F) -> (B, F + 1).
    A batch of one gets ``sqrt(eps)``: there is no variation to measure.

    Args:
        group_size: samples per group (ProGAN and StyleGAN use 4).
        eps: added to the variance before the square root.
    """

    def __init__(self, *, group_size: int = 4, eps: float = 1e-8) -> None:
        super().__init__()
        if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
            raise ValueError(f"group_size must be a positive integer, got {group_size!r}")
        self.group_size = group_size
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, C, ...) -> (B, C + 1, ...)
        b = x.shape[0]
        g = _group(b, self.group_size)
        m = b // g
        y = x.float().reshape(g, m, *x.shape[1:])  # sample n = i * m + j sits at (i, j)
        y = y - y.mean(0)  # deviation from its group's mean
        y = (y.square().mean(0) + self.eps).sqrt()  # (m, C, ...): std per feature and position
        y = y.reshape(m, -1).mean(1)  # (m,)
        y = y.repeat(g).to(x.dtype)  # (B,): sample n gets entry n % m
        stat = y.view(b, *([1] * (x.ndim - 1))).expand(b, 1, *x.shape[2:])
        return torch.cat([x, stat], 1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}"


@torch.no_grad()
def _widened(layer: nn.Module) -> nn.Module:
    """A copy of a Conv2d / Linear layer with one more input channel, its weights zero."""
    weight = raw_weight(layer)
    if isinstance(layer, nn.Conv2d):
        if layer.groups != 1:
            raise ValueError("minibatch_std: the last layer is a grouped convolution")
        new: nn.Module = nn.Conv2d(
            layer.in_channels + 1,
            layer.out_channels,
            layer.kernel_size,  # type: ignore[arg-type]
            stride=layer.stride,  # type: ignore[arg-type]
            padding=layer.padding,  # type: ignore[arg-type]
            dilation=layer.dilation,  # type: ignore[arg-type]
            bias=layer.bias is not None,
            padding_mode=layer.padding_mode,
        )
    elif isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features + 1, layer.out_features, bias=layer.bias is not None)
    else:
        raise ValueError(f"minibatch_std: cannot widen a {type(layer).__name__}")
    new = new.to(device=weight.device, dtype=weight.dtype)
    new.weight.zero_()
    new.weight[:, : weight.shape[1]].copy_(weight)
    if layer.bias is not None:
        new.bias.copy_(layer.bias)  # type: ignore[union-attr]
    if has_spectral_norm(layer):
        spectral_norm(new)
    elif parametrize.is_parametrized(layer):
        raise ValueError("minibatch_std: the last layer has a parametrisation other than SN")
    return new


def add_minibatch_std(model: nn.Module, *, group_size: int = 4) -> int:
    """Insert ``MinibatchStdDev`` before the last Conv2d / Linear of each chain of ``model``.

    Returns the number of layers inserted. Raises ``ValueError`` when ``model`` has no
    Conv2d or Linear layer.
    """
    chains = layer_chains(model)
    if not chains:
        raise ValueError("has no convolution or linear layer to put the statistic in front of")
    for chain in chains:
        site = chain[-1]
        stat = MinibatchStdDev(group_size=group_size)
        site.replace(nn.Sequential(stat, _widened(site.layer)))
    return len(chains)
