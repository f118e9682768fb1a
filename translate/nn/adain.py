"""Style-modulated normalisation for multimodal translation (MUNIT, Huang et al. 2018).

* ``adain`` / ``AdaptiveInstanceNorm2d`` -- adaptive instance normalisation (Huang & Belongie,
  "Arbitrary Style Transfer in Real-time with Adaptive Instance Normalization", ICCV 2017,
  Eq. 8): ``AdaIN(z, gamma, beta) = gamma * (z - mu(z)) / sigma(z) + beta``, with mu and sigma
  the per-image, per-channel mean and standard deviation over H, W. MUNIT (Sec. 3.2, "Decoder")
  computes gamma and beta with an MLP from the style code: ``StyleMLP`` makes them and
  ``assign_adain_params`` hands each AdaIN layer of a decoder its slice.
* ``LayerNorm2d`` -- layer normalisation (Ba et al. 2016) over C, H, W per image with a
  per-channel affine transform: MUNIT's upsampling layers (Sec. B.2 of its appendix: "we use
  Layer Normalization in the upsampling layers").

The output of ``adain`` has exactly the given per-channel mean (beta) and standard deviation
(gamma), up to ``eps`` (``tests/test_multimodal_core.py`` checks it by hand).
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

__all__ = [
    "AdaptiveInstanceNorm2d",
    "LayerNorm2d",
    "StyleMLP",
    "adain",
    "adain_param_count",
    "assign_adain_params",
]


def adain(x: Tensor, gamma: Tensor, beta: Tensor, eps: float = 1e-5) -> Tensor:
    """Normalise ``x`` (B, C, H, W) per image and channel, then scale by ``gamma`` and shift by
    ``beta`` (each (B, C)): the result has mean ``beta`` and standard deviation ``|gamma|``
    (population std over H, W) per image and channel."""
    if x.dim() != 4:
        raise ValueError(f"adain: expected (B, C, H, W), got shape {tuple(x.shape)}")
    b, c = x.shape[:2]
    for name, t in (("gamma", gamma), ("beta", beta)):
        if tuple(t.shape) != (b, c):
            raise ValueError(f"adain: {name} must be ({b}, {c}), got {tuple(t.shape)}")
    mean = x.mean((2, 3), keepdim=True)
    var = x.var((2, 3), keepdim=True, unbiased=False)
    normed = (x - mean) / torch.sqrt(var + eps)
    return normed * gamma[:, :, None, None] + beta[:, :, None, None]


class AdaptiveInstanceNorm2d(nn.Module):
    """AdaIN whose gamma and beta are set per batch from outside (``assign_adain_params``)
    before the forward pass, as MUNIT's decoder does; they are buffers-free attributes, so
    the module holds no parameters of its own."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.gamma: Tensor | None = None
        self.beta: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.gamma is None or self.beta is None:
            raise RuntimeError("AdaptiveInstanceNorm2d: assign gamma and beta before forward")
        return adain(x, self.gamma, self.beta, self.eps)

    def extra_repr(self) -> str:
        return f"{self.channels}, eps={self.eps}"


def adain_param_count(module: nn.Module) -> int:
    """How many numbers the AdaIN layers of ``module`` take: 2 * channels each."""
    return sum(2 * m.channels for m in module.modules() if isinstance(m, AdaptiveInstanceNorm2d))


def assign_adain_params(params: Tensor, module: nn.Module) -> None:
    """Hand each AdaIN layer of ``module`` (in ``modules()`` order) its slice of ``params``
    (B, adain_param_count(module)): the first C numbers are its beta (mean), the next C its
    gamma (std), as in MUNIT's official decoder."""
    need = adain_param_count(module)
    if params.dim() != 2 or params.shape[1] != need:
        raise ValueError(f"adain params: expected (B, {need}), got {tuple(params.shape)}")
    start = 0
    for m in module.modules():
        if isinstance(m, AdaptiveInstanceNorm2d):
            c = m.channels
            m.beta = params[:, start : start + c]
            m.gamma = params[:, start + c : start + 2 * c]
            start += 2 * c


class StyleMLP(nn.Sequential):
    """MUNIT's MLP from a style code (B, style_dim) to the AdaIN parameters (B, out_dim):
    ``layers`` linear layers (3 in the paper's configs), ReLU between them, none at the end."""

    def __init__(self, style_dim: int, out_dim: int, *, hidden: int = 256, layers: int = 3):
        if layers < 1:
            raise ValueError(f"StyleMLP layers must be >= 1, got {layers}")
        dims = [style_dim] + [hidden] * (layers - 1) + [out_dim]
        mods: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(dims)):
            mods.append(nn.Linear(a, b))
            if i < layers - 1:
                mods.append(nn.ReLU(inplace=True))
        super().__init__(*mods)


class LayerNorm2d(nn.Module):
    """Layer norm of a (B, C, H, W) map over C, H and W per image (population statistics),
    with a per-channel scale (init 1) and shift (init 0): MUNIT's upsampling norm."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean((1, 2, 3), keepdim=True)
        var = x.var((1, 2, 3), keepdim=True, unbiased=False)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return x * self.weight[None, :, None, None] + self.bias[None, :, None, None]
