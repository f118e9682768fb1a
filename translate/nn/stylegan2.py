"""StyleGAN2's networks (Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN"), equalised learning rate everywhere (``translate.nn.equalized``).

* ``MappingNetwork``: z -> w, pixel-normalised z (2nd moment 1), ``num_layers`` (8) fully
  connected leaky-ReLU layers with learning-rate multiplier 0.01 (StyleGAN, Sec. 2); tracks
  ``w_avg``, the running mean of w (decay 0.995) that the truncation trick pulls towards
  (``w_avg + psi * (w - w_avg)``, StyleGAN Sec. 5.2).
* ``SynthesisNetwork``: a learned constant 4x4 input, then per resolution two 3x3 modulated and
  demodulated convolutions (Sec. 2.2, Eqs. 1-3; the first upsamples), each followed by
  per-pixel noise with a learned strength, bias and leaky ReLU; the "skip" architecture of
  Fig. 7: one toRGB (a modulated 1x1 convolution, not demodulated) per resolution, summed
  into the upsampled image of the previous one. Each layer takes its own style vector:
  ``ws`` is (B, num_ws, w_dim), so styles can be mixed (Sec. 3.1 of StyleGAN) and inverted
  per layer (w+).
* ``Discriminator``: the residual architecture of Fig. 7, minibatch standard deviation over
  groups of 4 (``translate.nn.minibatch_std``) before a 3x3 convolution and two fully
  connected layers.

The generator is a small protocol for inference-time work (truncation, latent walks, later
inversion and dragging): ``mapping(z, psi)`` -> ws, ``synthesis(ws, noise_mode)`` -> image,
``synthesis(ws, return_features=True)`` -> (image, [feature map of each block]).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from translate.nn.equalized import (
    EqualizedConv2d,
    EqualizedLinear,
    bias_act,
    upsample2d,
)
from translate.nn.minibatch_std import MinibatchStdDev

__all__ = [
    "NOISE_MODES",
    "Discriminator",
    "Generator",
    "MappingNetwork",
    "ModulatedConv2d",
    "SynthesisNetwork",
    "channels_at",
    "mix_styles",
    "modulated_conv2d",
    "normalize_2nd_moment",
]

NOISE_MODES = ("random", "const", "none")


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    """Feature maps at ``resolution``: ``min(channel_base / resolution, channel_max)``."""
    return max(1, min(channel_base // resolution, channel_max))


def normalize_2nd_moment(x: Tensor, eps: float = 1e-8) -> Tensor:
    """``x / sqrt(mean(x^2) + eps)`` over the features (StyleGAN's pixel norm of z)."""
    return x * (x.square().mean(1, keepdim=True) + eps).rsqrt()


def modulated_conv2d(
    x: Tensor, weight: Tensor, styles: Tensor, *, demodulate: bool = True, eps: float = 1e-8
) -> Tensor:
    """StyleGAN2's weight (de)modulation (Sec. 2.2): ``w'_ijk = s_i w_ijk`` (Eq. 1) and, with
    ``demodulate``, ``w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk^2 + eps)`` (Eq. 3), so that
    unit-variance inputs give unit-variance outputs. ``x`` (B, I, H, W), ``weight`` (O, I, k, k)
    (already scaled), ``styles`` (B, I).

    Computed as the official code's non-fused path: scaling the input channels by ``s`` and the
    output channels by the demodulation coefficients around one shared convolution is the same
    linear map as convolving with the per-sample weights, and exports to ONNX with any batch."""
    k = weight.shape[-1]
    styles = styles.to(x.dtype)
    out = F.conv2d(x * styles[:, :, None, None], weight.to(x.dtype), padding=k // 2)
    if demodulate:
        w2 = weight.float().square().sum(dim=(2, 3))  # (O, I)
        coef = (styles.float().square() @ w2.T + eps).rsqrt()  # (B, O)
        out = out * coef.to(out.dtype)[:, :, None, None]
    return out


class ModulatedConv2d(nn.Module):
    """A modulated convolution: an affine layer maps w to one scale per input channel
    (initial bias 1), then ``modulated_conv2d`` with the equalised weight."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, w_dim: int, *, demodulate=True
    ) -> None:
        super().__init__()
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.demodulate = demodulate

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        styles = self.affine(w)
        return modulated_conv2d(
            x, self.weight * self.weight_gain, styles, demodulate=self.demodulate
        )


class SynthesisLayer(nn.Module):
    """(2x bilinear up), modulated 3x3 conv, + noise * learned strength (0 at the start),
    + bias, leaky ReLU with gain."""

    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, resolution: int, *, up: bool
    ) -> None:
        super().__init__()
        self.up, self.resolution = up, resolution
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, w_dim)
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: Tensor, w: Tensor, noise_mode: str = "random") -> Tensor:
        if self.up:
            x = upsample2d(x)
        x = self.conv(x, w)
        if noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype)
            x = x + noise * self.noise_strength.to(x.dtype)
        elif noise_mode == "const":
            x = x + (self.noise_const * self.noise_strength).to(x.dtype)
        return bias_act(x, self.bias, "lrelu")


class ToRGB(nn.Module):
    """A modulated 1x1 convolution to RGB, not demodulated, plus bias (no activation)."""

    def __init__(self, in_channels: int, w_dim: int, channels: int = 3) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        return bias_act(self.conv(x, w), self.bias, "linear")


class SynthesisBlock(nn.Module):
    """One resolution: the constant (4x4) or an upsampling layer, a second layer, a toRGB."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int) -> None:
        super().__init__()
        self.first = resolution == 4
        if self.first:
            self.const = nn.Parameter(torch.randn(out_channels, 4, 4))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=True)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, up=False)
        self.torgb = ToRGB(out_channels, w_dim)
        self.num_conv = 1 if self.first else 2

    def forward(
        self, x: Tensor | None, img: Tensor | None, ws: Tensor, noise_mode: str
    ) -> tuple[Tensor, Tensor]:
        # ws: (B, num_conv + 1, w_dim); the toRGB's style is the next block's first
        if self.first:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1).to(ws.dtype)
        else:
            assert x is not None
            x = self.conv0(x, ws[:, 0], noise_mode)
        x = self.conv1(x, ws[:, self.num_conv - 1], noise_mode)
        y = self.torgb(x, ws[:, self.num_conv])
        img = y if img is None else upsample2d(img).to(y.dtype) + y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws (B, num_ws, w_dim) -> image (B, 3, R, R); ``num_ws = 2 log2(R) - 2``."""

    def __init__(
        self, w_dim: int, resolution: int, *, channel_base: int = 32768, channel_max: int = 512
    ) -> None:
        super().__init__()
        if resolution < 4 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")
        self.w_dim, self.resolution = w_dim, resolution
        self.resolutions = [2**i for i in range(2, int(math.log2(resolution)) + 1)]
        blocks = []
        for res in self.resolutions:
            c_in = channels_at(max(res // 2, 4), channel_base, channel_max)
            blocks.append(
                SynthesisBlock(c_in, channels_at(res, channel_base, channel_max), w_dim, res)
            )
        self.blocks = nn.ModuleList(blocks)
        self.num_ws = sum(b.num_conv for b in blocks) + 1

    def forward(
        self, ws: Tensor, noise_mode: str = "random", *, return_features: bool = False
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """The image; with ``return_features``, also each block's feature map (block k at
        resolution 4 * 2**k), for feature-space losses and point tracking."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if ws.ndim != 3 or ws.shape[1] != self.num_ws:
            raise ValueError(f"ws must be (B, {self.num_ws}, {self.w_dim}), got {tuple(ws.shape)}")
        x = img = None
        features = []
        index = 0
        for block in self.blocks:
            x, img = block(x, img, ws[:, index : index + block.num_conv + 1], noise_mode)
            index += block.num_conv
            features.append(x)
        assert img is not None
        return (img, features) if return_features else img


class MappingNetwork(nn.Module):
    """z (B, z_dim) -> ws (B, num_ws, w_dim), with ``w_avg`` tracked while training."""

    def __init__(
        self,
        z_dim: int,
        w_dim: int,
        num_ws: int,
        *,
        num_layers: int = 8,
        lr_mul: float = 0.01,
        w_avg_beta: float = 0.995,
    ) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws = z_dim, w_dim, num_ws
        self.w_avg_beta = w_avg_beta
        dims = [z_dim] + [w_dim] * num_layers
        self.layers = nn.Sequential(
            *(
                EqualizedLinear(a, b, lr_mul=lr_mul, activation="lrelu")
                for a, b in itertools.pairwise(dims)
            )
        )
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: Tensor, psi: float = 1.0, cutoff: int | None = None) -> Tensor:
        w = self.layers(normalize_2nd_moment(z.float()))
        if self.training:  # the running mean of w the truncation trick pulls towards
            with torch.no_grad():
                self.w_avg.copy_(w.detach().float().mean(0).lerp(self.w_avg, self.w_avg_beta))
        ws = w.unsqueeze(1).expand(-1, self.num_ws, -1)
        if psi != 1:
            cut = self.num_ws if cutoff is None else cutoff
            near = self.w_avg.to(ws.dtype).lerp(ws[:, :cut], psi)
            ws = torch.cat([near, ws[:, cut:]], 1)
        return ws


class Generator(nn.Module):
    """z -> image: ``MappingNetwork`` then ``SynthesisNetwork``. ``pl_mean`` is the running
    path length of the path-length regulariser (``translate.losses.path_length``), a buffer so
    that checkpoints carry it."""

    def __init__(
        self,
        z_dim: int = 512,
        w_dim: int = 512,
        resolution: int = 256,
        *,
        mapping_layers: int = 8,
        mapping_lr_mul: float = 0.01,
        channel_base: int = 32768,
        channel_max: int = 512,
    ) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.resolution = z_dim, w_dim, resolution
        self.synthesis = SynthesisNetwork(
            w_dim, resolution, channel_base=channel_base, channel_max=channel_max
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim, w_dim, self.num_ws, num_layers=mapping_layers, lr_mul=mapping_lr_mul
        )
        self.register_buffer("pl_mean", torch.zeros([]))

    def forward(self, z: Tensor, psi: float = 1.0, noise_mode: str = "random") -> Tensor:
        return self.synthesis(self.mapping(z, psi), noise_mode)  # type: ignore[return-value]


def mix_styles(G: Generator, z: Tensor, ws: Tensor, prob: float) -> Tensor:  # noqa: N803
    """Style mixing regularisation (StyleGAN, Sec. 3.1): with probability ``prob`` the layers
    from a random crossover point on (one per batch, in [1, num_ws)) take the styles of a
    second latent; ``ws`` from ``G.mapping(z)``. The second mapping does not move ``w_avg``."""
    if prob <= 0 or ws.shape[1] < 2:
        return ws
    if float(torch.rand([])) >= prob:
        return ws
    cutoff = int(torch.randint(1, ws.shape[1], []))
    training = G.mapping.training
    G.mapping.eval()
    try:
        other = G.mapping(torch.randn_like(z))
    finally:
        G.mapping.train(training)
    return torch.cat([ws[:, :cutoff], other[:, cutoff:].to(ws.dtype)], 1)


class DiscriminatorBlock(nn.Module):
    """Residual block: two 3x3 convs (the second downsamples) beside a 1x1 downsampling skip,
    summed and scaled by sqrt(1/2) (Fig. 7c)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = EqualizedConv2d(in_channels, in_channels, 3, activation="lrelu")
        self.conv1 = EqualizedConv2d(in_channels, out_channels, 3, activation="lrelu", down=True)
        self.skip = EqualizedConv2d(in_channels, out_channels, 1, bias=False, down=True)

    def forward(self, x: Tensor) -> Tensor:
        return (self.skip(x) + self.conv1(self.conv0(x))) * math.sqrt(0.5)


class Discriminator(nn.Module):
    """Image (B, 3, R, R) -> logits (B, 1): fromRGB, residual blocks down to 4x4, minibatch
    stddev, 3x3 conv, fully connected, output."""

    def __init__(
        self,
        resolution: int = 256,
        *,
        channel_base: int = 32768,
        channel_max: int = 512,
        mbstd_group: int = 4,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if resolution < 4 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")

        def ch(r: int) -> int:
            return channels_at(r, channel_base, channel_max)

        self.fromrgb = EqualizedConv2d(in_channels, ch(resolution), 1, activation="lrelu")
        blocks = []
        res = resolution
        while res > 4:
            blocks.append(DiscriminatorBlock(ch(res), ch(res // 2)))
            res //= 2
        self.blocks = nn.Sequential(*blocks)
        c = ch(4)
        self.mbstd = MinibatchStdDev(group_size=mbstd_group)
        self.conv = EqualizedConv2d(c + 1, c, 3, activation="lrelu")
        self.fc = EqualizedLinear(c * 16, c, activation="lrelu")
        self.out = EqualizedLinear(c, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks(self.fromrgb(x))
        x = self.conv(self.mbstd(x))
        return self.out(self.fc(x.flatten(1)))
