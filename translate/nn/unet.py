"""The pix2pix U-Net generator.

Isola et al., "Image-to-Image Translation with Conditional Adversarial Networks", CVPR 2017
(Section 3.2.1 and Appendix 6.1.1): an encoder-decoder whose decoder level ``i`` receives, besides
the upsampled features from level ``i + 1``, the encoder features of level ``i`` (skip
connections, Ronneberger et al., "U-Net", MICCAI 2015).

Layout for ``depth`` levels, with ``C_i = base_channels * min(2 ** i, 8)`` channels at level ``i``
(every encoder convolution halves the resolution, every decoder convolution doubles it)::

    encoder level 0            Conv4x4 s2 (in -> C_0)
    encoder level 1..depth-2   LeakyReLU(0.2), Conv4x4 s2 (C_{i-1} -> C_i), norm
    encoder level depth-1      LeakyReLU(0.2), Conv4x4 s2 (C_{d-2} -> C_{d-1})    # innermost
    decoder level depth-1      ReLU, ConvT4x4 s2 (C_{d-1} -> C_{d-2}), norm
    decoder level depth-2..1   ReLU, ConvT4x4 s2 (2 C_i -> C_{i-1}), norm, [Dropout]
    decoder level 0            ReLU, ConvT4x4 s2 (2 C_0 -> out), Tanh

where the input of decoder level ``i < depth - 1`` is ``cat([encoder_i, decoder_{i+1}])``.
Dropout sits in the non-innermost decoder levels whose input and output widths are both
``8 * base_channels``; for ``depth = 8`` these are exactly the ``depth - 5 = 3`` blocks of the
reference implementation ("unet_256"), and dropout (p = 0.5) is the generator's noise source.

The network is built iteratively (two ``nn.ModuleList``) rather than as the reference's recursive
nesting of blocks, but has the same layers and parameters (54,414,979 for unet_256, 3 -> 3, batch
norm). Input height and width must be multiples of ``multiple_of = 2 ** depth``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from translate.nn.cpu_layers import Conv2d, ConvTranspose2d
from translate.nn.norms import (
    check_norm_kind,
    check_positive,
    check_probability,
    norm_layer,
    uses_bias,
)


def level_channels(base_channels: int, level: int) -> int:
    """Width of U-Net level ``level``: ``base_channels * min(2 ** level, 8)``."""
    return base_channels * min(2**level, 8)


class UnetGenerator(nn.Module):
    """pix2pix U-Net generator (Isola et al. 2017).

    Args:
        in_channels: channels of the input image.
        out_channels: channels of the output image.
        depth: number of downsampling levels (``num_downs`` in the reference; 8 for 256x256
            images, 7 for 128x128); at least 2. The bottleneck is ``H / 2 ** depth`` pixels high.
        base_channels: width of the outermost level (``ngf``).
        norm: ``"batch"``, ``"instance"`` or ``"none"``.
        dropout: dropout probability in the wide decoder levels (see the module docstring);
            0 disables dropout (no ``nn.Dropout`` module is created).

    Attributes:
        multiple_of: input height and width must be multiples of this (``2 ** depth``).
        encoder: ``depth`` encoder levels, outermost first.
        decoder: ``depth`` decoder levels in application order, innermost first.
    """

    multiple_of: int

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        depth: int = 8,
        base_channels: int = 64,
        norm: str = "batch",
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        check_positive("in_channels", in_channels)
        check_positive("out_channels", out_channels)
        check_positive("base_channels", base_channels)
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 2:
            raise ValueError(f"UnetGenerator depth must be an integer >= 2, got {depth!r}")
        check_norm_kind(norm)
        check_probability("dropout", dropout)

        self.in_channels = in_channels
        self.out_channels = out_channels
        self.depth = depth
        self.multiple_of = 2**depth
        bias = uses_bias(norm)
        widest = level_channels(base_channels, 3)  # 8 * base_channels
        ch = [level_channels(base_channels, i) for i in range(depth)]

        encoder: list[nn.Module] = []
        for i in range(depth):
            c_in = in_channels if i == 0 else ch[i - 1]
            conv = Conv2d(c_in, ch[i], kernel_size=4, stride=2, padding=1, bias=bias)
            if i == 0:
                encoder.append(nn.Sequential(conv))
            elif i == depth - 1:  # innermost: no norm on the bottleneck
                encoder.append(nn.Sequential(nn.LeakyReLU(0.2), conv))
            else:
                encoder.append(nn.Sequential(nn.LeakyReLU(0.2), conv, norm_layer(norm, ch[i])))

        decoder: list[nn.Module] = []
        for i in reversed(range(depth)):
            if i == 0:  # outermost: to image space, bias always on (no norm follows)
                up = ConvTranspose2d(2 * ch[0], out_channels, 4, stride=2, padding=1)
                decoder.append(nn.Sequential(nn.ReLU(inplace=True), up, nn.Tanh()))
                continue
            c_in = ch[i] if i == depth - 1 else 2 * ch[i]
            up = ConvTranspose2d(c_in, ch[i - 1], 4, stride=2, padding=1, bias=bias)
            layers: list[nn.Module] = [nn.ReLU(inplace=True), up, norm_layer(norm, ch[i - 1])]
            wide = ch[i] == widest and ch[i - 1] == widest
            if dropout > 0 and wide and i != depth - 1:
                layers.append(nn.Dropout(dropout))
            decoder.append(nn.Sequential(*layers))

        self.encoder = nn.ModuleList(encoder)
        self.decoder = nn.ModuleList(decoder)

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, in_channels, H, W) in [-1, 1], H and W multiples of 2 ** depth
        skips: list[Tensor] = []
        h = x
        for down in self.encoder:
            h = down(h)  # level i: (B, C_i, H / 2 ** (i + 1), W / 2 ** (i + 1))
            skips.append(h)
        h = self.decoder[0](skips[-1])  # (B, C_{d-2}, H / 2 ** (d - 1), W / 2 ** (d - 1))
        for up, skip in zip(self.decoder[1:], reversed(skips[:-1]), strict=True):
            h = up(torch.cat([skip, h], dim=1))  # skip first, as in the reference
        return h  # (B, out_channels, H, W) in [-1, 1]
