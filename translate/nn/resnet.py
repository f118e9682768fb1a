"""The ResNet-based generator of Johnson et al. and CycleGAN.

Johnson et al., "Perceptual Losses for Real-Time Style Transfer and Super-Resolution", ECCV 2016
(architecture in the supplementary material), as adapted by Zhu et al., "Unpaired Image-to-Image
Translation using Cycle-Consistent Adversarial Networks", ICCV 2017 (Appendix 7.2, with
reflection padding and instance norm)::

    ReflectionPad(3), Conv7x7 (in -> C), norm, ReLU                               # c7s1-C
    n_downsampling x  Conv3x3 s2 p1 (C' -> 2 C'), norm, ReLU                       # d2C ...
    n_blocks x        ResnetBlock(C * 2 ** n_downsampling)                         # R...
    n_downsampling x  ConvTranspose3x3 s2 p1 op1 (C' -> C' / 2), norm, ReLU        # u...
    ReflectionPad(3), Conv7x7 (C -> out), Tanh                                     # c7s1-out

With ``base_channels = 64``, ``n_blocks = 9`` and ``n_downsampling = 2`` this is the reference
"resnet_9blocks" (11,378,179 parameters for 3 -> 3 with instance norm); ``n_blocks = 6`` is the
128x128 variant. The spatial size is preserved for inputs whose height and width are multiples of
``multiple_of = 2 ** n_downsampling``.

``antialias=True`` is the configuration of CUT's official code (Park et al., "Contrastive
Learning for Unpaired Image-to-Image Translation", ECCV 2020; after Zhang, ICML 2019): each
stride-2 convolution becomes ``Conv3x3 s1 p1, norm, ReLU, BlurDownsample`` and each transposed
convolution ``BlurUpsample, Conv3x3 s1 p1, norm, ReLU`` (``translate.nn.antialias``).

``encode(x, layers)`` returns intermediate features for patch-wise losses (CUT's PatchNCE).
Layers are numbered as in the reference implementation, whose generator is one flat
``nn.Sequential``: our ``stem``, ``down``, ``blocks``, ``up`` and ``head`` hold the same layers in
the same order, so index ``i`` is the ``i``-th of them (``flat_layers``). With
``n_downsampling = 2``, anti-aliasing and any norm, CUT's ``0, 4, 8, 12, 16`` are::

    0   stem.0     ReflectionPad2d(3): the input, padded      (in_channels, H + 6, W + 6)
    4   down.0     Conv3x3 of the first downsampling stage   (2 C, H, W)       before its norm
    8   down.4     Conv3x3 of the second downsampling stage  (4 C, H / 2, W / 2) before its norm
    12  blocks.0   first residual block                      (4 C, H / 4, W / 4)
    16  blocks.4   fifth residual block                      (4 C, H / 4, W / 4)

Without anti-aliasing a downsampling stage has three layers, not four: 4 is then ``down.0``
(stride 2), 8 the second stage's ReLU (``down.5``), 12 and 16 the third and seventh blocks, as
in the reference with ``--no_antialias``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from translate.nn.antialias import BlurDownsample, BlurUpsample
from translate.nn.blocks import ResnetBlock
from translate.nn.cpu_layers import Conv2d, ConvTranspose2d, ReflectionPad2d
from translate.nn.norms import (
    check_norm_kind,
    check_positive,
    check_probability,
    norm_layer,
    uses_bias,
)


class ResnetGenerator(nn.Module):
    """ResNet generator (Johnson et al. 2016; CycleGAN, Zhu et al. 2017).

    Args:
        in_channels: channels of the input image.
        out_channels: channels of the output image.
        base_channels: width of the first and last convolution (``ngf``).
        n_blocks: number of residual blocks at the bottleneck (9 for 256x256, 6 for 128x128).
        n_downsampling: number of stride-2 downsampling (and upsampling) stages; 0 allowed.
        norm: ``"batch"``, ``"instance"`` or ``"none"``.
        dropout: dropout probability inside each residual block; 0 disables it.
        antialias: blurred down- and upsampling (CUT's official configuration, Zhang 2019)
            instead of strided and transposed convolutions.

    Attributes:
        multiple_of: input height and width should be multiples of this
            (``2 ** n_downsampling``) for the output to have the input's size.
    """

    multiple_of: int

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        base_channels: int = 64,
        n_blocks: int = 9,
        n_downsampling: int = 2,
        norm: str = "instance",
        dropout: float = 0.0,
        antialias: bool = False,
    ) -> None:
        super().__init__()
        check_positive("in_channels", in_channels)
        check_positive("out_channels", out_channels)
        check_positive("base_channels", base_channels)
        for name, value in (("n_blocks", n_blocks), ("n_downsampling", n_downsampling)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        check_norm_kind(norm)
        check_probability("dropout", dropout)

        self.in_channels = in_channels
        self.out_channels = out_channels
        self.multiple_of = 2**n_downsampling
        self.antialias = bool(antialias)
        bias = uses_bias(norm)

        self.stem = nn.Sequential(
            ReflectionPad2d(3),
            nn.Conv2d(in_channels, base_channels, kernel_size=7, padding=0, bias=bias),
            norm_layer(norm, base_channels),
            nn.ReLU(inplace=True),
        )

        down: list[nn.Module] = []
        for i in range(n_downsampling):
            c = base_channels * 2**i
            down += [
                nn.Conv2d(
                    c, 2 * c, kernel_size=3, stride=1 if antialias else 2, padding=1, bias=bias
                ),
                norm_layer(norm, 2 * c),
                nn.ReLU(inplace=True),
            ]
            if antialias:
                down.append(BlurDownsample(2 * c))
        self.down = nn.Sequential(*down)

        width = base_channels * 2**n_downsampling
        self.blocks = nn.Sequential(
            *(ResnetBlock(channels=width, norm=norm, dropout=dropout) for _ in range(n_blocks))
        )

        up: list[nn.Module] = []
        for i in reversed(range(n_downsampling)):
            c = base_channels * 2 ** (i + 1)
            if antialias:
                up += [
                    BlurUpsample(c),
                    nn.Conv2d(c, c // 2, kernel_size=3, stride=1, padding=1, bias=bias),
                ]
            else:
                up.append(
                    ConvTranspose2d(
                        c, c // 2, kernel_size=3, stride=2, padding=1, output_padding=1, bias=bias
                    )
                )
            up += [norm_layer(norm, c // 2), nn.ReLU(inplace=True)]
        self.up = nn.Sequential(*up)

        self.head = nn.Sequential(
            ReflectionPad2d(3),
            Conv2d(base_channels, out_channels, kernel_size=7, padding=0),
            nn.Tanh(),
        )

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, in_channels, H, W) in [-1, 1]
        h = self.stem(x)  # (B, C, H, W)
        h = self.down(h)  # (B, C * 2 ** n, H / 2 ** n, W / 2 ** n)
        h = self.blocks(h)  # same shape
        h = self.up(h)  # (B, C, H, W)
        return self.head(h)  # (B, out_channels, H, W) in [-1, 1]

    def flat_layers(self) -> list[tuple[str, nn.Module]]:
        """(name, layer) of every layer in order: the reference's flat ``nn.Sequential``."""
        return [
            (f"{part}.{i}", layer)
            for part in ("stem", "down", "blocks", "up", "head")
            for i, layer in enumerate(getattr(self, part))
        ]

    def encode(self, x: Tensor, layers: Sequence[int]) -> list[Tensor]:
        """The outputs of the layers numbered ``layers`` (increasing; see the module docstring),
        computed up to the last of them only. In-place ReLUs run out of place here, so a
        returned feature is never overwritten by the layer after it."""
        flat = self.flat_layers()
        wanted = list(layers)
        if (
            not wanted
            or wanted != sorted(set(wanted))
            or not 0 <= wanted[0] <= wanted[-1] < len(flat)
        ):
            raise ValueError(
                f"layers must be increasing indices in [0, {len(flat) - 1}], got {wanted}"
            )
        features: list[Tensor] = []
        h = x
        for i, (_, layer) in enumerate(flat[: wanted[-1] + 1]):
            h = F.relu(h) if isinstance(layer, nn.ReLU) else layer(h)
            if i in wanted:
                features.append(h)
        return features
