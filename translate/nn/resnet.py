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
"""

from __future__ import annotations

from torch import Tensor, nn

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
                nn.Conv2d(c, 2 * c, kernel_size=3, stride=2, padding=1, bias=bias),
                norm_layer(norm, 2 * c),
                nn.ReLU(inplace=True),
            ]
        self.down = nn.Sequential(*down)

        width = base_channels * 2**n_downsampling
        self.blocks = nn.Sequential(
            *(ResnetBlock(channels=width, norm=norm, dropout=dropout) for _ in range(n_blocks))
        )

        up: list[nn.Module] = []
        for i in reversed(range(n_downsampling)):
            c = base_channels * 2 ** (i + 1)
            up += [
                ConvTranspose2d(
                    c, c // 2, kernel_size=3, stride=2, padding=1, output_padding=1, bias=bias
                ),
                norm_layer(norm, c // 2),
                nn.ReLU(inplace=True),
            ]
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
