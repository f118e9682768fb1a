"""Equalised learning rate: layers whose weights are scaled at run time, not at initialisation.

Karras et al. 2018, "Progressive Growing of GANs" (Sec. 4.1): weights are drawn from N(0, 1) and
multiplied on every forward pass by the He constant ``c = 1 / sqrt(fan_in)``. Adam's update is
invariant to the scale of a parameter, so every layer then learns at the same speed however wide
it is. StyleGAN (Karras et al. 2019, Sec. 2 and App. C) adds a learning-rate multiplier
``lr_mul`` (0.01 in the mapping network): weights start at ``N(0, 1) / lr_mul`` and are scaled by
``lr_mul / sqrt(fan_in)``, biases by ``lr_mul``, so a parameter moves ``lr_mul`` times as fast.

Shared by the families that use it (StyleGAN2, ProGAN): ``EqualizedLinear``, ``EqualizedConv2d``,
``bias_act`` (bias, then leaky ReLU 0.2 with the gain sqrt(2) that keeps the activations' second
moment, Karras et al. 2018) and the 2x resampling used between resolutions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ACTIVATIONS",
    "LRELU_GAIN",
    "EqualizedConv2d",
    "EqualizedLinear",
    "bias_act",
    "downsample2d",
    "upsample2d",
]

#: The gain of the leaky ReLU (slope 0.2) that keeps the second moment of N(0, 1) inputs
#: (the papers' sqrt(2), as for a ReLU).
LRELU_GAIN = math.sqrt(2.0)
ACTIVATIONS = ("linear", "lrelu")


def bias_act(x: Tensor, bias: Tensor | None, activation: str, *, dim: int = 1) -> Tensor:
    """``act(x + bias) * gain``: bias broadcast along ``dim``; ``lrelu`` is leaky ReLU 0.2
    times sqrt(2), ``linear`` adds the bias only."""
    if bias is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + bias.to(x.dtype).view(shape)
    if activation == "lrelu":
        return F.leaky_relu(x, 0.2) * LRELU_GAIN
    return x


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


class EqualizedLinear(nn.Module):
    """A fully connected layer with the equalised learning rate.

    ``weight`` is stored as N(0, 1) / lr_mul and used times ``weight_gain = lr_mul /
    sqrt(in_features)``; ``bias`` (initialised to ``bias_init``) is stored divided by lr_mul and
    used times ``lr_mul``. ``activation``: ``linear`` or ``lrelu`` (with its gain).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activation: str = "linear",
    ) -> None:
        super().__init__()
        _check_activation(activation)
        if not lr_mul > 0:
            raise ValueError(f"lr_mul must be > 0, got {lr_mul}")
        self.in_features, self.out_features = in_features, out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = (
            nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul)) if bias else None
        )
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = None if self.bias is None else self.bias * self.bias_gain
        return bias_act(F.linear(x, w), b, self.activation)

    def extra_repr(self) -> str:
        return (
            f"{self.in_features}, {self.out_features}, activation={self.activation}, "
            f"weight_gain={self.weight_gain:.4g}"
        )


class EqualizedConv2d(nn.Module):
    """A 2-D convolution with the equalised learning rate (``weight_gain = lr_mul /
    sqrt(in_channels * k * k)``), 'same' padding, optional bias and activation, and optional
    2x resampling: ``up`` upsamples the input before the convolution, ``down`` downsamples it
    (``upsample2d`` / ``downsample2d``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        bias: bool = True,
        lr_mul: float = 1.0,
        activation: str = "linear",
        up: bool = False,
        down: bool = False,
    ) -> None:
        super().__init__()
        _check_activation(activation)
        if up and down:
            raise ValueError("a convolution cannot both upsample and downsample")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = kernel_size
        self.activation, self.up, self.down = activation, up, down
        self.weight = nn.Parameter(
            torch.randn(out_channels, in_channels, kernel_size, kernel_size) / lr_mul
        )
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_channels * kernel_size * kernel_size)
        self.bias_gain = lr_mul

    def forward(self, x: Tensor) -> Tensor:
        if self.up:
            x = upsample2d(x)
        if self.down:
            x = downsample2d(x)
        w = self.weight.to(x.dtype) * self.weight_gain
        x = F.conv2d(x, w, padding=self.kernel_size // 2)
        b = None if self.bias is None else self.bias * self.bias_gain
        return bias_act(x, b, self.activation)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, k={self.kernel_size}, "
            f"activation={self.activation}, up={self.up}, down={self.down}"
        )


def upsample2d(x: Tensor) -> Tensor:
    """2x bilinear upsampling (half-pixel centres): away from the border this is the FIR filter
    [1, 3, 3, 1] / 4 per axis of StyleGAN2's ``upfirdn2d`` (Karras et al. 2020, App. B)."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def downsample2d(x: Tensor) -> Tensor:
    """2x downsampling with the FIR filter [1, 3, 3, 1] / 8 per axis, zero padding of 1, stride
    2: StyleGAN2's ``upfirdn2d`` before its strided convolutions (a depthwise convolution, so
    it runs in any precision)."""
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0], device=x.device, dtype=x.dtype) / 8
    kernel = torch.outer(taps, taps).expand(x.shape[1], 1, 4, 4)
    return F.conv2d(x, kernel, stride=2, padding=1, groups=x.shape[1])
