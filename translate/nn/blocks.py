"""Reusable residual and attention blocks.

* ``ResnetBlock`` -- the residual block of Johnson et al., "Perceptual Losses for Real-Time Style
  Transfer and Super-Resolution" (ECCV 2016), with reflection padding as used by CycleGAN (Zhu et
  al., "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks", ICCV
  2017): ``x + conv(relu(norm(conv(x))))`` with an optional dropout in between.
* ``SelfAttention2d`` -- the self-attention block of SAGAN (Zhang et al., "Self-Attention
  Generative Adversarial Networks", ICML 2019). Its output is ``gamma * attention(x) + x`` with
  ``gamma`` a learned scalar initialised to zero, so a freshly built block is the identity and the
  network learns to use non-local context gradually.

Both blocks keep the spatial size and the number of channels, and are ONNX-exportable (no
data-dependent Python control flow; attention uses ``reshape`` / ``bmm`` / ``softmax``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from translate.nn.cpu_layers import ReflectionPad2d
from translate.nn.norms import (
    check_norm_kind,
    check_positive,
    check_probability,
    norm_layer,
    uses_bias,
)


class ResnetBlock(nn.Module):
    """Residual block ``x + F(x)`` (Johnson et al. 2016; CycleGAN, Zhu et al. 2017).

    ``F`` is: reflect-pad 1, Conv3x3, norm, ReLU, [Dropout], reflect-pad 1, Conv3x3, norm.
    The convolutions have a bias unless ``norm == "batch"`` (as in the reference code).

    Args:
        channels: number of input (and output) channels.
        norm: ``"batch"``, ``"instance"`` or ``"none"``.
        dropout: dropout probability between the two convolutions; 0 disables it (no module).
    """

    def __init__(self, *, channels: int, norm: str = "instance", dropout: float = 0.0) -> None:
        super().__init__()
        check_positive("channels", channels)
        check_norm_kind(norm)
        check_probability("dropout", dropout)
        bias = uses_bias(norm)
        layers: list[nn.Module] = [
            ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3, padding=0, bias=bias),
            norm_layer(norm, channels),
            nn.ReLU(inplace=True),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [
            ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3, padding=0, bias=bias),
            norm_layer(norm, channels),
        ]
        self.channels = channels
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, C, H, W) -> (B, C, H, W)
        return x + self.body(x)


class SelfAttention2d(nn.Module):
    """SAGAN self-attention over all spatial positions (Zhang et al. 2019).

    With ``N = H * W`` positions, query ``q = Wq x`` and key ``k = Wk x`` (1x1 convolutions to
    ``channels // 8`` channels) give the attention map ``A = softmax_j(q_i . k_j)`` of shape
    ``(N, N)``; the value ``v = Wv x`` (1x1 convolution, ``channels`` channels) is aggregated as
    ``o_i = sum_j A_ij v_j`` and the block returns ``gamma * o + x``. ``gamma`` is an
    ``nn.Parameter`` initialised to 0, so the block starts as the identity.

    Memory grows as ``(H * W) ** 2`` per image: use it on low-resolution feature maps
    (SAGAN places it at 32x32 or 64x64).

    Args:
        channels: number of input (and output) channels; at least 8 so that the query/key
            projection has ``channels // 8 >= 1`` channels.
    """

    def __init__(self, *, channels: int) -> None:
        super().__init__()
        check_positive("channels", channels)
        if channels < 8:
            raise ValueError(
                f"SelfAttention2d needs channels >= 8 (query/key use channels // 8), got {channels}"
            )
        inner = channels // 8
        self.channels = channels
        self.query = nn.Conv2d(channels, inner, kernel_size=1)
        self.key = nn.Conv2d(channels, inner, kernel_size=1)
        self.value = nn.Conv2d(channels, channels, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, C, H, W)
        b, c, h, w = x.shape
        q = self.query(x).reshape(b, -1, h * w)  # (B, C/8, N)
        k = self.key(x).reshape(b, -1, h * w)  # (B, C/8, N)
        v = self.value(x).reshape(b, c, h * w)  # (B, C, N)
        energy = torch.bmm(q.transpose(1, 2), k)  # (B, N, N): energy[i, j] = q_i . k_j
        attn = torch.softmax(energy, dim=-1)  # (B, N, N), rows sum to 1 over positions j
        out = torch.bmm(v, attn.transpose(1, 2))  # (B, C, N): out[:, i] = sum_j attn[i, j] v_j
        out = out.reshape(b, c, h, w)  # (B, C, H, W)
        return self.gamma * out + x
