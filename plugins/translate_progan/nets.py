"""ProGAN's networks: a generator and a discriminator that grow from 4x4 by doubling.

Karras et al. 2018, "Progressive Growing of GANs for Improved Quality, Stability, and
Variation" (Sec. 2, Fig. 2, Table 2; App. A.1). Both networks are built at the final
resolution; which part runs is their growth state, the buffers ``level`` (log2 of the current
resolution) and ``alpha`` (how far the newest block is faded in), saved with the weights, so a
checkpoint of any phase loads and samples at its own resolution.

* G: z (pixel-normalised onto the hypersphere) -> dense 4x4 -> 3x3 conv; per doubling a nearest
  upsampling and two 3x3 convolutions; leaky ReLU 0.2 and pixel-wise feature normalisation
  (Sec. 4.2, Eq. in the text) after every convolution; a 1x1 toRGB per resolution. While a
  block fades in, the image is ``(1 - alpha) * up(toRGB_prev(x_prev)) + alpha * toRGB(x)``.
* D: the mirror image: fromRGB (1x1), two 3x3 convolutions and 2x2 average pooling per
  halving; at 4x4 the minibatch standard deviation (Sec. 3), a 3x3 convolution and two dense
  layers. While fading in: ``(1 - alpha) * fromRGB_prev(pool(img)) + alpha * block(fromRGB(img))``.
* Every weight uses the equalised learning rate (Sec. 4.1, ``translate.nn.equalized``) with He's
  gain sqrt(2) (1 for toRGB and the last dense layer, sqrt(2)/4 for G's first dense layer, as
  in the official code); biases start at zero and are added after the scaled weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from translate.nn.equalized import LRELU_GAIN, EqualizedConv2d, EqualizedLinear
from translate.nn.minibatch_std import MinibatchStdDev

__all__ = ["Discriminator", "Generator", "Sampler", "pixel_norm", "real_images", "widths"]


def widths(level: int, fmap_base: int, fmap_max: int) -> int:
    """Channels of a stage: ``min(fmap_base / 2 ** level, fmap_max)`` (official ``nf``)."""
    return max(1, min(int(fmap_base / 2.0**level), fmap_max))


def pixel_norm(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Pixel-wise feature vector normalisation (Sec. 4.2):
    ``b = a / sqrt(mean_j(a_j ** 2) + eps)`` over the channels of each position."""
    return x * torch.rsqrt(x.square().mean(1, keepdim=True) + eps)


def upsample(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


def downsample(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, 2)


def real_images(x: Tensor, level: int, alpha: float) -> Tensor:
    """Training images as D sees them at ``2 ** level`` (official ``process_reals``): box-
    filtered down, and while a block fades in blended with the half-resolution copy, upscaled:
    ``(1 - alpha) * up(pool(x_r)) + alpha * x_r``."""
    size = 2**level
    if x.shape[-1] != size:
        x = F.adaptive_avg_pool2d(x, size)
    if alpha < 1:
        x = torch.lerp(upsample(downsample(x)), x, alpha)
    return x


class Layer(nn.Module):
    """An equalised-LR convolution (or dense layer) with He's gain sqrt(2), a bias, and leaky
    ReLU 0.2: ``lrelu(sqrt(2) * conv(x) / sqrt(fan_in) + b)`` (the official
    ``act(apply_bias(conv2d(...)))``)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, *, dense: bool = False) -> None:
        super().__init__()
        self.op: nn.Module = (
            EqualizedLinear(cin, cout, bias=False)
            if dense
            else EqualizedConv2d(cin, cout, kernel, bias=False)
        )
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(self, x: Tensor) -> Tensor:
        y = self.op(x) * LRELU_GAIN
        shape = (1, -1) + (1,) * (y.ndim - 2)
        return F.leaky_relu(y + self.bias.view(shape), 0.2)


class Growing(nn.Module):
    """The growth state both networks carry: ``level`` and ``alpha`` buffers."""

    def __init__(self, resolution: int) -> None:
        super().__init__()
        if resolution < 4 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")
        self.max_level = int(math.log2(resolution))
        self.register_buffer("level", torch.tensor(self.max_level, dtype=torch.int64))
        self.register_buffer("alpha", torch.tensor(1.0))

    @torch.no_grad()
    def grow(self, resolution: int, alpha: float) -> None:
        """Set the resolution the network works at and the newest block's weight."""
        self.level.fill_(int(math.log2(resolution)))
        self.alpha.fill_(float(alpha))

    def state(self, resolution: int | None, alpha: float | None) -> tuple[int, float]:
        level = int(self.level) if resolution is None else int(math.log2(resolution))
        if not 2 <= level <= self.max_level:
            raise ValueError(f"resolution {2**level} is outside 4..{2**self.max_level}")
        a = float(self.alpha) if alpha is None else float(alpha)
        return level, (1.0 if level == 2 else a)

    @property
    def resolution(self) -> int:
        return 2 ** int(self.level)


class Generator(Growing):
    """z (B, latent_dim) -> images (B, 3, r, r) at the current resolution ``r`` (or the
    ``resolution`` and ``alpha`` given)."""

    def __init__(
        self,
        latent_dim: int,
        resolution: int,
        *,
        fmap_base: int = 8192,
        fmap_max: int = 512,
        use_pixel_norm: bool = True,
        normalize_latents: bool = True,
    ) -> None:
        super().__init__(resolution)
        nf = [widths(i, fmap_base, fmap_max) for i in range(self.max_level + 1)]
        self.latent_dim, self.c4 = latent_dim, nf[1]
        self.use_pixel_norm, self.normalize_latents = use_pixel_norm, normalize_latents
        self.dense = EqualizedLinear(latent_dim, nf[1] * 16, bias=False)
        self.dense_bias = nn.Parameter(torch.zeros(nf[1]))
        self.conv4 = Layer(nf[1], nf[1])
        self.blocks = nn.ModuleList(
            nn.ModuleList([Layer(nf[r - 2], nf[r - 1]), Layer(nf[r - 1], nf[r - 1])])
            for r in range(3, self.max_level + 1)
        )
        self.to_rgb = nn.ModuleList(
            EqualizedConv2d(nf[r - 1], 3, 1) for r in range(2, self.max_level + 1)
        )

    def _pn(self, x: Tensor) -> Tensor:
        return pixel_norm(x) if self.use_pixel_norm else x

    def forward(
        self, z: Tensor, resolution: int | None = None, alpha: float | None = None
    ) -> Tensor:
        level, alpha = self.state(resolution, alpha)
        x = pixel_norm(z) if self.normalize_latents else z
        # the official gain sqrt(2) / 4 of the first dense layer; one bias per channel
        x = self.dense(x).view(-1, self.c4, 4, 4) * (LRELU_GAIN / 4)
        x = self._pn(F.leaky_relu(x + self.dense_bias.view(1, -1, 1, 1), 0.2))
        x = self._pn(self.conv4(x))
        prev = x
        for block in self.blocks[: level - 2]:
            prev = x
            x = upsample(x)
            for layer in block:
                x = self._pn(layer(x))
        image = self.to_rgb[level - 2](x)
        if alpha < 1:  # fading in: the previous resolution's image, upscaled
            image = torch.lerp(upsample(self.to_rgb[level - 3](prev)), image, alpha)
        return image


class Discriminator(Growing):
    """Images (B, 3, r, r) at the current resolution -> scores (B, 1)."""

    def __init__(
        self, resolution: int, *, fmap_base: int = 8192, fmap_max: int = 512, mbstd_group: int = 4
    ) -> None:
        super().__init__(resolution)
        nf = [widths(i, fmap_base, fmap_max) for i in range(self.max_level + 1)]
        self.from_rgb = nn.ModuleList(Layer(3, nf[r - 1], 1) for r in range(2, self.max_level + 1))
        self.blocks = nn.ModuleList(
            nn.Sequential(Layer(nf[r - 1], nf[r - 1]), Layer(nf[r - 1], nf[r - 2]))
            for r in range(3, self.max_level + 1)
        )
        self.mbstd = MinibatchStdDev(group_size=mbstd_group) if mbstd_group > 0 else None
        extra = 1 if self.mbstd is not None else 0
        self.conv4 = Layer(nf[1] + extra, nf[1])
        self.dense0 = Layer(nf[1] * 16, nf[0], dense=True)
        self.dense1 = EqualizedLinear(nf[0], 1)  # gain 1, linear

    def forward(
        self, img: Tensor, resolution: int | None = None, alpha: float | None = None
    ) -> Tensor:
        level, alpha = self.state(resolution, alpha)
        x = self.from_rgb[level - 2](img)
        for r in range(level, 2, -1):
            x = downsample(self.blocks[r - 3](x))
            if r == level and alpha < 1:  # fading in: the half-resolution path
                x = torch.lerp(self.from_rgb[r - 3](downsample(img)), x, alpha)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv4(x)
        return self.dense1(self.dense0(x.flatten(1)))


class Sampler(nn.Module):
    """ProGAN's inference module: z -> images at the resolution and alpha ``G`` had when it
    was wrapped (read once, so an ONNX export is traced at the checkpoint's resolution),
    clamped to [-1, 1]."""

    def __init__(self, G: Generator) -> None:  # noqa: N803
        super().__init__()
        self.G = G
        self.resolution, self.alpha = G.resolution, float(G.alpha)
        self.train(G.training)

    def forward(self, z: Tensor) -> Tensor:
        return self.G(z, self.resolution, self.alpha).clamp(-1, 1)
