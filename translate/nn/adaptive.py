"""GigaGAN's generator blocks at small scale (Kang et al. 2023, "Scaling up GANs for
Text-to-Image Synthesis", Sec. 3.2-3.3, Fig. 4):

* ``AdaptiveConv2d`` -- sample-adaptive kernel selection (Eq. 3): a bank of N filters
  ``K_i``; per sample, a softmax over an affine map of the style code w mixes them,
  ``K = sum_i softmax(W_filter^T w + b)_i K_i``, and the mixed kernel is then modulated and
  demodulated by w as StyleGAN2's weight modulation (Karras et al. 2020, Eq. 1-3).
* ``CrossAttention`` -- image features attend to the text tokens (Sec. 3.2: "cross-attention
  ... to the text embedding t_local"); ``SelfAttention`` -- over the feature map's pixels.
  GigaGAN interleaves both with the convolutions at each scale (Fig. 4).

The style-code MLP, the blocks' order and the multi-scale outputs are assembled by the plugin
that uses them (``translate_stackgan.gigagan``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["AdaptiveConv2d", "CrossAttention", "SelfAttention"]


class AdaptiveConv2d(nn.Module):
    """x (B, Cin, H, W), w (B, W) -> (B, Cout, H, W) with a per-sample kernel mixed from a
    bank of ``kernels`` filters by ``select(w)`` and modulated by ``scale(w)`` ('same' padding)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        *,
        style_dim: int,
        kernels: int,
        size: int = 3,
        demodulate: bool = True,
    ) -> None:
        super().__init__()
        # (N * Cout, Cin, k, k): 4-D, so channels_last moves it like any conv weight
        self.bank = nn.Parameter(
            torch.randn(kernels * cout, cin, size, size) / math.sqrt(cin * size * size)
        )
        self.kernels = kernels
        self.bias = nn.Parameter(torch.zeros(cout))
        self.select = nn.Linear(style_dim, kernels)
        self.scale = nn.Linear(style_dim, cin)
        nn.init.zeros_(self.scale.weight)
        nn.init.ones_(self.scale.bias)  # modulation starts at 1 (StyleGAN2's bias init)
        self.demodulate, self.padding = demodulate, size // 2

    def kernel(self, selection: Tensor, scale: Tensor | None) -> Tensor:
        """(B, Cout, Cin, k, k): the bank mixed by ``selection`` (B, N), modulated by ``scale``
        (B, Cin) when given, and demodulated when the layer demodulates."""
        bank = self.bank.view(self.kernels, -1, *self.bank.shape[1:])  # (N, Cout, Cin, k, k)
        weight = torch.einsum("bn,noikl->boikl", selection, bank)
        if scale is not None:
            weight = weight * scale[:, None, :, None, None]
            if self.demodulate:
                weight = weight * torch.rsqrt(weight.square().sum((2, 3, 4), keepdim=True) + 1e-8)
        return weight

    def mixed(self, x: Tensor, selection: Tensor, scale: Tensor | None) -> Tensor:
        """x convolved with each sample's kernel (``kernel(selection, scale)``), computed by
        linearity as the selection-weighted sum of the bank's convolutions of the modulated
        input (one plain convolution: exportable with a dynamic batch, unlike a grouped one),
        then the demodulation's per-output scale."""
        b, _, h, w = x.shape
        out = F.conv2d(
            x if scale is None else x * scale[..., None, None], self.bank, None, 1, self.padding
        )
        out = torch.einsum("bn,bnohw->bohw", selection, out.view(b, self.kernels, -1, h, w))
        if scale is not None and self.demodulate:
            weight = self.kernel(selection, None) * scale[:, None, :, None, None]
            out = out * torch.rsqrt(weight.square().sum((2, 3, 4)) + 1e-8)[..., None, None]
        return out + self.bias.view(1, -1, 1, 1)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        return self.mixed(x, self.select(style).softmax(1), self.scale(style))


class SelfAttention(nn.Module):
    """Multi-head self-attention over the pixels of (B, C, H, W), a residual with a pre-norm."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(1, channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q = self.norm(x).flatten(2).transpose(1, 2)
        out, _ = self.attn(q, q, q, need_weights=False)
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class CrossAttention(nn.Module):
    """Pixels (B, C, H, W) attend to text tokens (B, L, D) (``mask`` (B, L) True on words),
    a residual with a pre-norm."""

    def __init__(self, channels: int, text_dim: int, heads: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(1, channels)
        self.attn = nn.MultiheadAttention(
            channels, heads, kdim=text_dim, vdim=text_dim, batch_first=True
        )

    def forward(self, x: Tensor, tokens: Tensor, mask: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q = self.norm(x).flatten(2).transpose(1, 2)
        # an additive mask (not a bool one): ONNX export takes it as is
        bias = torch.zeros_like(mask, dtype=q.dtype).masked_fill(~mask, -1e4)
        bias = bias[:, None, :].repeat_interleave(self.attn.num_heads, 0).expand(-1, q.shape[1], -1)
        out, _ = self.attn(q, tokens, tokens, attn_mask=bias, need_weights=False)
        return x + out.transpose(1, 2).reshape(b, c, h, w)
