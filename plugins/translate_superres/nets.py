"""Super-resolution networks: residual generators at low resolution, and their discriminators.

Generators work at the input (low) resolution and upsample at the end with sub-pixel
convolution (pixel shuffle, Shi et al. 2016), so their cost grows with the input's pixels, not
the output's:

- ``SRResNet``: residual blocks without batch norm (Lim et al. 2017, EDSR: batch norm removed,
  residual scaling), SRGAN's generator shape (Ledig et al. 2017) otherwise.
- ``RRDBNet``: ESRGAN's residual-in-residual dense blocks (Wang et al. 2018, Sec. 3.1).

Both optionally add a bicubic upsampling of the input to their output (global residual
learning, Kim et al. 2016, VDSR), so a freshly initialised network starts at bicubic quality
and learns only the missing high frequencies: the short CPU budgets of the shipped model
converge much faster that way.

Discriminators: ``VGGDiscriminator`` (SRGAN Fig. 4, fully convolutional: a patch of logits
instead of dense layers, so any crop size works) and ``UNetDiscriminator`` (Real-ESRGAN,
Wang et al. 2021, Sec. 3.3: per-pixel logits, spectral norm on every convolution).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrizations

from translate.nn.cpu_layers import Conv2d
from translate.nn.norms import check_positive


def _check_scale(scale: int) -> None:
    if scale not in (2, 3, 4):
        raise ValueError(f"scale must be 2, 3 or 4, got {scale}")


class Upsampler(nn.Sequential):
    """Sub-pixel upsampling by ``scale``: x2 stages for 2 and 4 (SRGAN), one x3 stage for 3;
    ``stages="single"`` maps straight to ``out_channels * scale**2`` channels (ESPCN), which
    is cheapest: every convolution stays at the input resolution."""

    def __init__(self, *, channels: int, out_channels: int, scale: int, single: bool) -> None:
        _check_scale(scale)
        layers: list[nn.Module] = []
        if single:
            layers += [nn.Conv2d(channels, out_channels * scale**2, 3, padding=1)]
            layers += [nn.PixelShuffle(scale)]
        else:
            factors = [2, 2] if scale == 4 else [scale]
            for f in factors:
                layers += [nn.Conv2d(channels, channels * f * f, 3, padding=1), nn.PixelShuffle(f)]
                layers += [nn.LeakyReLU(0.2, inplace=True)]
            layers += [Conv2d(channels, out_channels, 3, padding=1)]
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """conv-ReLU-conv with an identity shortcut and no batch norm (EDSR)."""

    def __init__(self, channels: int, res_scale: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        return x + self.res_scale * self.conv2(F.relu(self.conv1(x)))


class _LowResGenerator(nn.Module):
    """head conv -> body (+ a long skip over it) -> sub-pixel tail, plus ``bicubic(x)`` when
    ``bicubic_skip`` (VDSR's global residual). Subclasses build ``body``."""

    def __init__(
        self, *, scale: int, channels: int, in_channels: int, single: bool, bicubic_skip: bool
    ) -> None:
        super().__init__()
        _check_scale(scale)
        check_positive("channels", channels)
        self.scale, self.bicubic_skip = scale, bicubic_skip
        self.head = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.body_end = nn.Conv2d(channels, channels, 3, padding=1)
        self.tail = Upsampler(
            channels=channels, out_channels=in_channels, scale=scale, single=single
        )

    body: nn.Module

    def forward(self, x: Tensor) -> Tensor:
        features = self.head(x)
        y = self.tail(features + self.body_end(self.body(features)))
        if not self.bicubic_skip:
            return y
        return y + F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)


class SRResNet(_LowResGenerator):
    """(B, C, h, w) -> (B, C, h * scale, w * scale), any h and w."""

    def __init__(
        self,
        *,
        scale: int,
        channels: int = 64,
        blocks: int = 16,
        in_channels: int = 3,
        res_scale: float = 1.0,
        single_upsample: bool = False,
        bicubic_skip: bool = True,
    ) -> None:
        check_positive("blocks", blocks)
        super().__init__(
            scale=scale,
            channels=channels,
            in_channels=in_channels,
            single=single_upsample,
            bicubic_skip=bicubic_skip,
        )
        self.body = nn.Sequential(*(ResidualBlock(channels, res_scale) for _ in range(blocks)))


class DenseBlock(nn.Module):
    """Five convolutions, each seeing all earlier outputs (ESRGAN Fig. 4, residual scaling)."""

    def __init__(self, channels: int, growth: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(channels + i * growth, growth if i < 4 else channels, 3, padding=1)
            for i in range(5)
        )

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for i, conv in enumerate(self.convs):
            out = conv(torch.cat(features, 1))
            if i < 4:
                features.append(F.leaky_relu(out, 0.2))
        return x + 0.2 * out


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, scaled by 0.2 (ESRGAN)."""

    def __init__(self, channels: int, growth: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(DenseBlock(channels, growth) for _ in range(3)))

    def forward(self, x: Tensor) -> Tensor:
        return x + 0.2 * self.blocks(x)


class RRDBNet(_LowResGenerator):
    """ESRGAN's generator (23 blocks, 64 channels, growth 32 in the paper)."""

    def __init__(
        self,
        *,
        scale: int,
        channels: int = 64,
        blocks: int = 23,
        growth: int = 32,
        in_channels: int = 3,
        bicubic_skip: bool = False,
    ) -> None:
        check_positive("blocks", blocks)
        check_positive("growth", growth)
        super().__init__(
            scale=scale,
            channels=channels,
            in_channels=in_channels,
            single=False,
            bicubic_skip=bicubic_skip,
        )
        self.body = nn.Sequential(*(RRDB(channels, growth) for _ in range(blocks)))


class VGGDiscriminator(nn.Module):
    """SRGAN's / ESRGAN's discriminator as a fully convolutional net: pairs of 3x3 convolutions
    (the second of each pair strided), widths 64 -> 512, batch norm after every convolution but
    the first (``norm="batch"``, as both papers), LeakyReLU 0.2, then 1x1 convolutions to a patch
    of logits. ``norm="none"`` leaves batch norm out, for gradient penalties (which it clashes
    with) or spectral norm (``--spectral-norm d``)."""

    def __init__(
        self, *, in_channels: int = 3, base_channels: int = 64, stages: int = 4, norm: str = "batch"
    ) -> None:
        super().__init__()
        check_positive("base_channels", base_channels)
        check_positive("stages", stages)
        if norm not in ("batch", "none"):
            raise ValueError(f"VGGDiscriminator norm must be 'batch' or 'none', got {norm!r}")
        bn = norm == "batch"

        def conv(c_i: int, c_o: int, k: int, stride: int, first: bool = False) -> list[nn.Module]:
            with_bn = bn and not first
            layers: list[nn.Module] = [
                nn.Conv2d(c_i, c_o, k, stride, k // 2 if k == 3 else 1, bias=not with_bn)
            ]
            if with_bn:
                layers.append(nn.BatchNorm2d(c_o))
            return [*layers, nn.LeakyReLU(0.2, inplace=True)]

        layers: list[nn.Module] = []
        c_in = in_channels
        for i in range(stages):
            c_out = base_channels * 2 ** min(i, 3)
            layers += conv(c_in, c_out, 3, 1, first=i == 0)
            layers += conv(c_out, c_out, 4, 2)
            c_in = c_out
        layers += [nn.Conv2d(c_in, c_in * 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        layers += [nn.Conv2d(c_in * 2, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def _sn(conv: nn.Conv2d) -> nn.Module:
    return parametrizations.spectral_norm(conv)


class UNetDiscriminator(nn.Module):
    """Real-ESRGAN's U-Net discriminator: three strided levels down, three up with skips,
    spectral norm on every convolution but the first and last, a logit per pixel."""

    def __init__(self, *, in_channels: int = 3, base_channels: int = 64) -> None:
        super().__init__()
        check_positive("base_channels", base_channels)
        c = base_channels
        self.conv0 = nn.Conv2d(in_channels, c, 3, padding=1)
        self.down = nn.ModuleList(
            [
                _sn(nn.Conv2d(c, c * 2, 4, 2, 1, bias=False)),
                _sn(nn.Conv2d(c * 2, c * 4, 4, 2, 1, bias=False)),
                _sn(nn.Conv2d(c * 4, c * 8, 4, 2, 1, bias=False)),
            ]
        )
        self.up = nn.ModuleList(
            [
                _sn(nn.Conv2d(c * 8, c * 4, 3, 1, 1, bias=False)),
                _sn(nn.Conv2d(c * 4, c * 2, 3, 1, 1, bias=False)),
                _sn(nn.Conv2d(c * 2, c, 3, 1, 1, bias=False)),
            ]
        )
        self.refine = nn.Sequential(
            _sn(nn.Conv2d(c, c, 3, 1, 1, bias=False)),
            nn.LeakyReLU(0.2, inplace=True),
            _sn(nn.Conv2d(c, c, 3, 1, 1, bias=False)),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(c, 1, 3, 1, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        if h % 8 or w % 8:
            raise ValueError(f"UNetDiscriminator needs sides divisible by 8, got {h}x{w}")
        skips = [F.leaky_relu(self.conv0(x), 0.2)]
        for conv in self.down:
            skips.append(F.leaky_relu(conv(skips[-1]), 0.2))
        y = skips.pop()
        for conv in self.up:
            y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
            y = F.leaky_relu(conv(y), 0.2) + skips.pop()
        return self.refine(y)


def init_residual(module: nn.Module, *, scale: float = 0.1) -> nn.Module:
    """Kaiming-normal convolutions scaled by ``scale`` (ESRGAN's initialisation: small residual
    branches keep a deep residual network near identity at the start)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and not hasattr(m, "parametrizations"):
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            m.weight.data.mul_(scale)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class Clamped(nn.Module):
    """``module(x)`` clamped to [-1, 1]: the inference form of a generator whose residual
    output may overshoot (ringing at edges); the clamp is what the saved image would do
    anyway, and it keeps PSNR honest at the model's boundary."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x).clamp(-1.0, 1.0)
