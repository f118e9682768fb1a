"""Drop-in subclasses of PyTorch layers that compute the same mathematics faster on the CPU.

Each keeps its parent's parameters, state dict and results (to float rounding), takes PyTorch's
own path on GPUs, for shapes it does not cover and while exporting or tracing (so an ONNX file
holds the standard operators), and is measured in ``benchmarks/profile_step.py``.

**Few-pixel convolutions** (``Conv2d``, ``ConvTranspose2d``). A convolution whose output (or a
transposed convolution whose input) has only a handful of pixels does almost no arithmetic per
weight: the pix2pix U-Net's inner levels at 256x256 run 512- and 1024-channel 4x4 kernels over
1x1 to 8x8 feature maps, 4-8 million weights each for 1-64 positions. oneDNN's convolution
reorders every weight into a blocked layout for the forward pass, again for each backward pass,
and back for the weight gradient; at these sizes that traffic is the whole cost (a 1024 -> 512
transposed convolution at 4x4: 15 ms forward and backward in bf16, of which the arithmetic
needs under 1 ms). Written as one matrix product over the weight as it lies in memory, the same
sums need no reorder: a convolution is ``unfold(x) @ W`` (im2col), a transposed convolution is
``fold(x @ W)`` (col2im), and autograd's backward of each is two more products over the same
view. For a channels-last weight the matrix view is taken in (kh, kw, channel) order, so it is
free; the few-pixel operand is permuted instead. Measured forward and backward, bf16, 2
threads: 1024 -> 512 transposed at 1x1 to 8x8 input 13-17 ms -> 5-10 ms, 512 -> 512 at 2x2 to
8x8 input 7 ms -> 2.5-3 ms; at 16 positions per image and more the two are even and then oneDNN
wins, hence ``FEW_PIXELS``. The U-Net step: 0.26 s -> 0.22 s.

**Transposed convolutions' bias apart** (``ConvTranspose2d``). oneDNN's backward of a
transposed convolution takes 3-7 ms longer when it also returns the bias gradient (a sum over
the output gradient, 0.1 ms in PyTorch): the ResNet generator's two upsampling layers at
256x256, 10 and 14 ms instead of 6 and 7. The bias is added after the convolution instead.

**Narrow convolutions** (``Conv2d`` with at most ``NARROW`` output channels, stride 1). oneDNN
computes output channels 16 at a time, so the ResNet generator's last layer (64 -> 3, 7x7, at
256x256) does 16/3 of its arithmetic: 7.4 ms forward for 1.2 GFLOP, 22 ms with its backward,
and a CycleGAN step has six. Moving the kernel's 7 columns into the output channels fills the
lanes: a (7, 1) convolution to 3 x 7 = 21 channels, whose channel (o, v) shifted left by v and
summed over v is output channel o. Same products and sums: 4.0 ms forward, 12.5 ms with the
backward.

**Reflection padding in the input's precision** (``ReflectionPad2d``). CPU autocast runs
``reflection_pad2d`` in float32, so in a bf16 ResNet block the padded activation was cast up
for the pad and back down for the next convolution, forward and backward: five copies of each
activation around every 3x3 convolution, 0.17 s of a 2.8 s CycleGAN step. Padding only moves
values, so it is exact in bf16: it runs in the dtype it is given.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from translate.nn.norms import exporting

FEW_PIXELS = 64
"""Most positions (batch x pixels on the convolution's small side) computed as one product."""

NARROW = 4
"""Most output channels of a convolution computed with its kernel columns as channels."""


def _plain(module: nn.Module, x: Tensor) -> bool:
    """A CPU batch through an ungrouped, undilated, zero-padded layer, not being exported."""
    return (
        x.device.type == "cpu"
        and x.dim() == 4
        and module.groups == 1
        and module.dilation == (1, 1)
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
        and not exporting()
    )


def _channels_last(t: Tensor) -> bool:
    return not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)


def _like(y: Tensor, x: Tensor, weight: Tensor) -> Tensor:
    """``y`` channels-last if the input or the weight is, as PyTorch's convolution gives it."""
    fmt = torch.channels_last if _channels_last(x) or _channels_last(weight) else None
    return y.contiguous(memory_format=fmt or torch.contiguous_format)


def _out_size(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, stride, padding) -> Tensor:
    """``F.conv2d(x, weight, bias, stride, padding)`` as ``unfold(x) @ W``."""
    n, c_in, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    oh, ow = _out_size(h, kh, stride[0], padding[0]), _out_size(w, kw, stride[1], padding[1])
    cols = F.unfold(x, (kh, kw), padding=padding, stride=stride)  # (n, c_in * kh * kw, L)
    if _channels_last(weight):  # W as (c_out, kh, kw, c_in) in memory: columns in that order
        cols = cols.view(n, c_in, kh * kw, oh * ow).permute(0, 3, 2, 1)
        matrix = weight.permute(0, 2, 3, 1).reshape(c_out, kh * kw * c_in)
    else:
        cols = cols.transpose(1, 2)
        matrix = weight.reshape(c_out, c_in * kh * kw)
    y = F.linear(cols.reshape(n, oh * ow, -1), matrix, bias)  # (n, L, c_out)
    return _like(y.view(n, oh, ow, c_out).permute(0, 3, 1, 2), x, weight)


def conv_transpose2d(
    x: Tensor, weight: Tensor, bias: Tensor | None, stride, padding, output_padding
) -> Tensor:
    """``F.conv_transpose2d(x, weight, bias, stride, padding, output_padding)`` as
    ``fold(x @ W)``: each input pixel scatters ``x[:, :, i, j] @ W`` into its kernel window."""
    n, c_in, h, w = x.shape
    _, c_out, kh, kw = weight.shape
    oh = (h - 1) * stride[0] - 2 * padding[0] + kh + output_padding[0]
    ow = (w - 1) * stride[1] - 2 * padding[1] + kw + output_padding[1]
    pixels = x.permute(0, 2, 3, 1).reshape(n, h * w, c_in)
    if _channels_last(weight):  # W as (c_in, kh, kw, c_out) in memory
        cols = F.linear(pixels, weight.permute(0, 2, 3, 1).reshape(c_in, -1).t())
        cols = cols.view(n, h * w, kh * kw, c_out).permute(0, 3, 2, 1)
    else:
        cols = F.linear(pixels, weight.reshape(c_in, -1).t()).transpose(1, 2)
    cols = cols.reshape(n, c_out * kh * kw, h * w)
    y = F.fold(cols, (oh, ow), (kh, kw), padding=padding, stride=stride)
    if bias is not None:
        y = y + bias.to(y.dtype).view(1, -1, 1, 1)
    return _like(y, x, weight)


def narrow_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, padding) -> Tensor:
    """``F.conv2d(x, weight, bias, 1, padding)`` for few output channels: the kernel's ``kw``
    columns become output channels of a ``(kh, 1)`` convolution; channel ``(o, v)`` shifted
    left by ``v`` and summed over ``v`` is output channel ``o``."""
    c_out, c_in, kh, kw = weight.shape
    columns = weight.permute(0, 3, 1, 2).reshape(c_out * kw, c_in, kh, 1)  # channel (o, v)
    z = F.conv2d(x, columns, None, 1, padding).contiguous()  # (n, c_out * kw, oh, W + 2 pw)
    n, _, oh, zw = z.shape
    ow = zw - kw + 1
    # the diagonal view shifted[b, o, v, i, j] = z[b, (o, v), i, j + v], summed over v (one
    # pass, and a cheap backward, unlike kw slices)
    sb, sc, si, sj = z.stride()
    shifted = z.as_strided((n, c_out, kw, oh, ow), (sb, kw * sc, sc + sj, si, sj))
    y = shifted.sum(2)
    if bias is not None:
        y = y + bias.to(y.dtype).view(1, -1, 1, 1)
    return _like(y, x, weight)


class ReflectionPad2d(nn.ReflectionPad2d):
    """``nn.ReflectionPad2d`` that pads in the input's dtype under autocast (exact in any)."""

    def forward(self, input: Tensor) -> Tensor:
        device = input.device.type
        if torch.is_autocast_enabled(device) and not exporting():
            with torch.autocast(device, enabled=False):
                return super().forward(input)
        return super().forward(input)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` that computes few-pixel outputs on the CPU as one matrix product, and few
    output channels with the kernel's columns as channels."""

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        if _plain(self, input):
            if self.out_channels <= NARROW and self.kernel_size[1] > 1 and self.stride == (1, 1):
                return narrow_conv2d(input, weight, bias, self.padding)
            (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
            oh, ow = _out_size(input.shape[2], kh, sh, ph), _out_size(input.shape[3], kw, sw, pw)
            if input.shape[0] * oh * ow <= FEW_PIXELS:
                return conv2d(input, weight, bias, self.stride, self.padding)
        return super()._conv_forward(input, weight, bias)


class ConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` that computes few-pixel inputs on the CPU as one matrix product,
    and adds its bias after the convolution otherwise."""

    def forward(self, input: Tensor, output_size: list[int] | None = None) -> Tensor:
        if output_size is None and _plain(self, input):
            rows = input.shape[0] * input.shape[2] * input.shape[3]
            if rows <= FEW_PIXELS:
                return conv_transpose2d(
                    input, self.weight, self.bias, self.stride, self.padding, self.output_padding
                )
            if self.bias is not None:  # the bias apart: its gradient is a sum, not oneDNN's pass
                y = F.conv_transpose2d(
                    input, self.weight, None, self.stride, self.padding, self.output_padding
                )
                return y + self.bias.to(y.dtype).view(1, -1, 1, 1)
        return super().forward(input, output_size)
