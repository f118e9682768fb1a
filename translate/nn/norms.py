"""Normalisation layers shared by every network in ``translate.nn``.

The choice of normalisation is a single string so that it can come straight from a config field:

* ``"batch"`` -- ``BatchNorm2d`` with a learned affine transform (Ioffe & Szegedy, 2015), the
  pix2pix default (Isola et al., "Image-to-Image Translation with Conditional Adversarial
  Networks", CVPR 2017).
* ``"instance"`` -- ``InstanceNorm2d`` *without* affine parameters and without running
  statistics (Ulyanov et al., "Instance Normalization: The Missing Ingredient for Fast
  Stylization", 2016), the CycleGAN default (Zhu et al., ICCV 2017). Statistics are always
  computed per image, in training and in evaluation alike.
* ``"none"`` -- no normalisation (``nn.Identity``), e.g. for spectrally normalised
  discriminators (Miyato et al., ICLR 2018).

``uses_bias`` follows the pix2pix/CycleGAN reference implementation: a convolution that is
followed by batch norm has no bias (batch norm's own shift makes it redundant); with instance
norm (no affine shift) or no norm at all, the convolution keeps its bias.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NormKind = Literal["batch", "instance", "none"]

NORM_KINDS: tuple[str, ...] = get_args(NormKind)


def check_norm_kind(kind: str) -> None:
    """Raise ``ValueError`` unless ``kind`` is one of ``NORM_KINDS``."""
    if kind not in NORM_KINDS:
        choices = ", ".join(repr(k) for k in NORM_KINDS)
        raise ValueError(f"unknown norm kind {kind!r}; expected one of {choices}")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """Build the normalisation layer ``kind`` for a feature map with ``channels`` channels.

    Args:
        kind: ``"batch"``, ``"instance"`` or ``"none"``.
        channels: number of channels of the normalised ``(B, C, H, W)`` tensor.

    Returns:
        ``BatchNorm2d(channels, affine=True)``, ``InstanceNorm2d(channels, affine=False,
        track_running_stats=False)`` or ``nn.Identity()``.

    Raises:
        ValueError: ``kind`` is unknown or ``channels`` is not positive.
    """
    check_norm_kind(kind)
    if channels < 1:
        raise ValueError(f"norm layer channels must be >= 1, got {channels}")
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True)
    if kind == "instance":
        return InstanceNorm2d(channels, affine=False, track_running_stats=False)
    return nn.Identity()


def exporting() -> bool:
    """Tracing, exporting to ONNX or torch.export: modules take their standard path."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()


class InstanceNorm2d(nn.InstanceNorm2d):
    """``nn.InstanceNorm2d`` (same parameters, state dict and results) that keeps channels-last
    inputs channels-last.

    PyTorch's instance norm views a ``(B, C, H, W)`` batch as ``(1, B * C, H, W)`` and calls
    batch norm, which first makes a channels-last tensor contiguous: a copy in, and a copy back
    in the next convolution, forward and backward (a quarter of a CycleGAN step on CPU). Batch
    norm of one image *is* its instance norm (statistics over H, W per channel), so each image
    goes through batch norm in its own layout. Export keeps the standard operator.

    The CPU batch-norm kernel for channels-last keeps fp32 statistics, which lose digits to
    cancellation when a channel's mean is large against its spread (a convolution's output
    often is): up to 6x the error of PyTorch's instance norm in the output and 14x in the input
    gradient, enough to flip ReLUs and change a CycleGAN gradient by percents. In fp32 each
    image's channel means are subtracted first (a shift instance norm removes anyway; taken as
    a constant, since its true gradient is 0), which leaves the kernel centred data and the
    result as accurate as PyTorch's. (bf16 inputs are summed in fp32: their own rounding is
    far coarser than the statistics' error, so they skip the extra pass.)
    """

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, C, H, W)
        if (
            self.track_running_stats
            or x.dim() != 4
            or not x.is_contiguous(memory_format=torch.channels_last)
            or x.is_contiguous()  # (B, C, 1, 1) or C == 1: both layouts at once
            or exporting()
        ):
            return super().forward(x)
        if x.dtype == torch.float32:  # (bf16 data is coarser than the float statistics)
            x = x - x.detach().mean((2, 3), keepdim=True)  # (B, C, H, W), channels-last
        images = x.split(1) if x.shape[0] > 1 else (x,)  # (split's backward is a cat: a copy)
        per_image = [
            F.batch_norm(image, None, None, self.weight, self.bias, True, 0.0, self.eps)
            for image in images
        ]
        return per_image[0] if len(per_image) == 1 else torch.cat(per_image)


def uses_bias(kind: str) -> bool:
    """Whether a convolution followed by a ``kind`` norm layer should have a bias.

    Only batch norm makes the bias redundant (its learned shift absorbs it), as in the pix2pix /
    CycleGAN reference implementation.

    Raises:
        ValueError: ``kind`` is unknown.
    """
    check_norm_kind(kind)
    return kind != "batch"


def check_positive(name: str, value: int) -> None:
    """Raise ``ValueError`` unless the integer hyper-parameter ``name`` is at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_probability(name: str, value: float) -> None:
    """Raise ``ValueError`` unless ``0 <= value < 1`` (a dropout probability)."""
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
