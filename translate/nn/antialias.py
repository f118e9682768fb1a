"""Anti-aliased (blurred) down- and upsampling with fixed binomial filters.

Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019: a strided convolution
aliases; low-pass filtering before subsampling ("BlurPool") keeps the network closer to shift
equivariant. CUT (Park et al., "Contrastive Learning for Unpaired Image-to-Image Translation",
ECCV 2020) builds its ResNet generator and PatchGAN this way in its official configuration:

* ``BlurDownsample`` -- reflect-pad 1, depthwise 3x3 binomial filter ``[1, 2, 1]^T [1, 2, 1] / 16``,
  stride 2: ``(H, W) -> (ceil(H / 2), ceil(W / 2))``. Replaces ``Conv(stride 2)`` by
  ``Conv(stride 1)`` followed by this layer.
* ``BlurUpsample`` -- replicate-pad 1, zero-insertion upsampling by 2 and the depthwise 4x4
  binomial filter ``[1, 3, 3, 1]^T [1, 3, 3, 1] / 16`` (a transposed convolution whose taps sum
  to 4 = stride^2, so a constant stays constant), cropped to ``(2 H, 2 W)``. Replaces a learned
  ``ConvTranspose(stride 2)`` by this layer followed by a ``Conv(stride 1)``.

Both have no parameters (the filters are buffers that are not saved) and export to ONNX
(``Pad`` + grouped ``Conv`` / ``ConvTranspose``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from translate.nn.norms import check_positive


def binomial_filter(taps: int) -> Tensor:
    """The separable 2-D binomial filter of ``taps`` taps per side, summing to 1."""
    row = torch.tensor([1.0])
    for _ in range(taps - 1):  # Pascal's triangle: [1, 1] convolved taps - 1 times
        row = torch.cat([row, torch.zeros(1)]) + torch.cat([torch.zeros(1), row])
    kernel = row[:, None] * row[None, :]
    return kernel / kernel.sum()


class BlurDownsample(nn.Module):
    """Low-pass filter, then subsample by 2 (Zhang 2019): ``(B, C, H, W) -> (B, C, H', W')``
    with ``H' = ceil(H / 2)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        check_positive("channels", channels)
        self.channels = channels
        weight = binomial_filter(3)[None, None].repeat(channels, 1, 1, 1)  # (C, 1, 3, 3)
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")  # (B, C, H + 2, W + 2)
        return F.conv2d(padded, self.weight.to(x.dtype), stride=2, groups=self.channels)


class BlurUpsample(nn.Module):
    """Upsample by 2 with a fixed binomial interpolation filter (Zhang 2019):
    ``(B, C, H, W) -> (B, C, 2 H, 2 W)``; a constant image stays the same constant."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        check_positive("channels", channels)
        self.channels = channels
        weight = 4 * binomial_filter(4)[None, None].repeat(channels, 1, 1, 1)  # (C, 1, 4, 4)
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        padded = F.pad(x, (1, 1, 1, 1), mode="replicate")  # (B, C, H + 2, W + 2)
        # a stride-2 transposed convolution of the padded map gives 2 (H + 2) - 2 rows with
        # padding 2; the border taps that saw the replicated rows are cropped: rows 1 .. 2 H
        up = F.conv_transpose2d(
            padded, self.weight.to(x.dtype), stride=2, padding=2, groups=self.channels
        )  # (B, C, 2 H + 2, 2 W + 2)
        return up[:, :, 1:-1, 1:-1]
