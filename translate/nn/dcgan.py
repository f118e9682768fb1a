"""The DCGAN generator and discriminator (Radford et al. 2016, Sec. 3 and Fig. 1).

The paper's architecture guidelines: strided (transposed) convolutions instead of pooling, batch
norm in both networks (not on G's output nor D's input), ReLU in G with tanh on its output,
LeakyReLU (0.2) in D, and no fully connected hidden layers: z enters as a (B, Z, 1, 1) tensor
that a 4x4 transposed convolution projects to a 4x4 map, and D ends in a 4x4 convolution to one
logit. Each stage doubles (G) or halves (D) the side, from 4 to ``image_size`` (a power of two).
"""

from __future__ import annotations

import math

from torch import Tensor, nn


def stages(image_size: int) -> int:
    """Stride-2 stages between a 4x4 map and ``image_size`` (a power of two >= 8)."""
    return int(math.log2(image_size)) - 2


class DCGANGenerator(nn.Module):
    """z (B, Z, 1, 1) -> image (B, C, S, S) in [-1, 1]."""

    def __init__(
        self,
        *,
        latent_dim: int,
        image_size: int,
        out_channels: int = 3,
        base_channels: int = 64,
        extra_layers: int = 0,
    ) -> None:
        super().__init__()
        n = stages(image_size)
        width = base_channels * 2 ** (n - 1)  # e.g. 512 at 4x4 for 64x64 images (the paper's 1024
        # at 4x4 is for 64x64 LSUN with base 128)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, width, 4, 1, 0, bias=False),  # 1x1 -> 4x4
            nn.BatchNorm2d(width),
            nn.ReLU(True),
        ]
        for _ in range(n - 1):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width // 2),
                nn.ReLU(True),
            ]
            width //= 2
        if extra_layers:  # at full resolution before the output (the authors' n_extra_layers)
            layers += [nn.ConvTranspose2d(width, width, 4, 2, 1, bias=False)]
            layers += [nn.BatchNorm2d(width), nn.ReLU(True)]
            for _ in range(extra_layers - 1):
                layers += [nn.Conv2d(width, width, 3, 1, 1, bias=False)]
                layers += [nn.BatchNorm2d(width), nn.ReLU(True)]
            layers += [nn.Conv2d(width, out_channels, 3, 1, 1), nn.Tanh()]
        else:
            layers += [nn.ConvTranspose2d(width, out_channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class DCGANDiscriminator(nn.Module):
    """image (B, C, S, S) -> features (B, F, 4, 4) -> one logit per image (B, 1, 1, 1).

    ``features`` is exposed for conditional heads (projection, auxiliary classifier)."""

    def __init__(
        self,
        *,
        image_size: int,
        in_channels: int = 3,
        base_channels: int = 64,
        extra_layers: int = 0,
    ) -> None:
        super().__init__()
        n = stages(image_size)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, base_channels, 4, 2, 1),
            nn.LeakyReLU(0.2, True),
        ]
        width = base_channels
        for _ in range(extra_layers):  # 3x3 stride-1 (the authors' n_extra_layers)
            layers += [nn.Conv2d(width, width, 3, 1, 1, bias=False)]
            layers += [nn.BatchNorm2d(width), nn.LeakyReLU(0.2, True)]
        for _ in range(n - 1):
            layers += [
                nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width * 2),
                nn.LeakyReLU(0.2, True),
            ]
            width *= 2
        self.features = nn.Sequential(*layers)
        self.feature_channels = width
        self.head = nn.Conv2d(width, 1, 4, 1, 0)  # 4x4 -> 1x1

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def init_dcgan(module: nn.Module) -> nn.Module:
    """The paper's initialisation: weights from N(0, 0.02); batch-norm scales from N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module
