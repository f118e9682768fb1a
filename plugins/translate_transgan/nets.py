"""TransGAN's transformers (Jiang, Chang and Wang 2021, "TransGAN: Two Pure Transformers Can
Make One Strong GAN, and That Can Scale Up").

Generator (Sec. 3.1, Fig. 2): a linear map of z to a ``bottom`` x ``bottom`` grid of tokens with
learned position embeddings, then stages of transformer encoder blocks (pre-norm layer norm,
multi-head self-attention, a GELU MLP of ratio 4); between stages, pixel shuffle (Shi et al.
2016) doubles the resolution and quarters the width; the last stage attends within
non-overlapping ``grid`` x ``grid`` windows (grid self-attention, Sec. 3.3) to keep the cost
linear in the pixels; a linear map of each final token gives its RGB value.

Discriminator (Sec. 3.2, multi-scale): the image cut into patches of three sizes (P, 2P, 4P),
each linearly embedded (the stems: strided convolutions of kernel = stride = patch, a linear
map of each patch); blocks on the finest tokens, 2x2 average pooling of the token grid and the
next scale's tokens concatenated, and so on; a class token and a last block; a linear head.

Apart from those stems there is no convolution: blocks are linear maps, attention and layer
norm (``tests/test_transgan.py`` checks).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class Attention(nn.Module):
    """Multi-head self-attention over tokens (B, N, C)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        # softmax(q k^T / sqrt(d)) v, written out: the gradient penalty differentiates it twice
        weights = ((q * (c // self.heads) ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    """x + MSA(LN(x)), then x + MLP(LN(x)) (pre-norm transformer encoder block); with ``grid``
    g > 0 and the token grid's side, attention runs within g x g windows."""

    def __init__(self, dim: int, heads: int, grid: int = 0) -> None:
        super().__init__()
        self.grid = grid
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm1(x)
        if self.grid:
            side = math.isqrt(x.shape[1])
            x = x + ungrid(self.attn(to_grid(h, side, self.grid)), side, self.grid)
        else:
            x = x + self.attn(h)
        return x + self.mlp(self.norm2(x))


def to_grid(x: Tensor, side: int, g: int) -> Tensor:
    """Tokens (B, side^2, C) of a side x side map -> windows (B * (side/g)^2, g^2, C)."""
    b, _, c = x.shape
    n = side // g
    return x.view(b, n, g, n, g, c).permute(0, 1, 3, 2, 4, 5).reshape(b * n * n, g * g, c)


def ungrid(x: Tensor, side: int, g: int) -> Tensor:
    """The inverse of ``to_grid``."""
    n = side // g
    b, c = x.shape[0] // (n * n), x.shape[-1]
    return x.view(b, n, n, g, g, c).permute(0, 1, 3, 2, 4, 5).reshape(b, side * side, c)


def tokens_to_map(x: Tensor, side: int) -> Tensor:
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], side, side)


def map_to_tokens(x: Tensor) -> Tensor:
    return x.flatten(2).transpose(1, 2)


class Generator(nn.Module):
    """z (B, Z) -> images (B, 3, S, S) in [-1, 1]; S = bottom * 2^(len(depths) - 1)."""

    def __init__(
        self,
        latent_dim: int,
        *,
        bottom: int,
        dim: int,
        depths: tuple[int, ...],
        heads: int,
        grid: int,
    ) -> None:
        super().__init__()
        self.bottom, self.dim = bottom, dim
        self.fc = nn.Linear(latent_dim, bottom * bottom * dim)
        self.pos = nn.ParameterList()
        self.stages = nn.ModuleList()
        for i, depth in enumerate(depths):
            width, side = dim // 4**i, bottom * 2**i
            last = i == len(depths) - 1 and len(depths) > 1
            self.pos.append(nn.Parameter(torch.randn(1, side * side, width) * 0.02))
            g = grid if last and 0 < grid < side else 0
            self.stages.append(
                nn.Sequential(*(Block(width, max(1, min(heads, width)), g) for _ in range(depth)))
            )
        self.to_rgb = nn.Linear(dim // 4 ** (len(depths) - 1), 3)

    def forward(self, z: Tensor) -> Tensor:
        x = self.fc(z).view(-1, self.bottom**2, self.dim)
        side = self.bottom
        for i, (pos, stage) in enumerate(zip(self.pos, self.stages, strict=True)):
            if i:  # pixel shuffle: 2x the side, a quarter of the width
                x = map_to_tokens(F.pixel_shuffle(tokens_to_map(x, side), 2))
                side *= 2
            x = stage(x + pos)
        return torch.tanh(self.to_rgb(x)).transpose(1, 2).reshape(-1, 3, side, side)


class Discriminator(nn.Module):
    """images (B, 3, S, S) -> one score (B, 1): multi-scale patch tokens, transformer blocks,
    a class token, a linear head."""

    def __init__(self, image_size: int, *, patch: int, dim: int, depth: int, heads: int) -> None:
        super().__init__()
        # scales P, 2P, 4P: widths dim/4, dim/4, dim/2; concatenated to dim/4, dim/2, dim
        widths, self.patch = (dim // 4, dim // 4, dim // 2), patch
        self.stems = nn.ModuleList(
            nn.Conv2d(3, w, patch * 2**i, patch * 2**i) for i, w in enumerate(widths)
        )
        self.pos = nn.ParameterList(
            nn.Parameter(torch.randn(1, (image_size // (patch * 2**i)) ** 2, w) * 0.02)
            for i, w in enumerate(widths)
        )
        dims = (dim // 4, dim // 2, dim)
        self.stages = nn.ModuleList(
            nn.Sequential(*(Block(d, max(1, min(heads, d))) for _ in range(max(1, depth // 3))))
            for d in dims
        )
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.last = Block(dim, heads)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = None
        side = x.shape[-1] // self.patch
        for stem, pos, stage in zip(self.stems, self.pos, self.stages, strict=True):
            tokens = map_to_tokens(stem(x)) + pos
            if h is not None:  # the previous scale's tokens, 2x2-pooled, beside this scale's
                pooled = F.avg_pool2d(tokens_to_map(h, side), 2)
                side //= 2
                tokens = torch.cat([map_to_tokens(pooled), tokens], 2)
            h = stage(tokens)
        assert h is not None
        h = self.last(torch.cat([self.cls.expand(h.shape[0], -1, -1), h], 1))
        return self.head(self.norm(h[:, 0]))


def init_weights(module: nn.Module) -> nn.Module:
    """Xavier-uniform linear and stem weights, zero biases (the authors' ``xavier_uniform``)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module
