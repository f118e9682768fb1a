"""BicycleGAN's networks (Zhu et al. 2017, Sec. 4 "Implementation details"; App. 1).

* ``ZUnet`` -- the pix2pix U-Net (``translate.nn.UnetGenerator``) taking z: spatially
  replicated and concatenated to the input ("add_to_input"), or to the input of every encoder
  level ("add_to_all"); the paper compares both (Sec. 4, Fig. 4).
* ``ResnetEncoder`` -- E: a strided conv, residual blocks that each halve the resolution
  (He et al. 2016), global average pooling, and two linear heads for the mean and the
  log-variance of q(z | B) (the VAE head, Kingma & Welling 2014).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from translate.nn import UnetGenerator
from translate.nn.cpu_layers import Conv2d
from translate.nn.norms import norm_layer, uses_bias


def tile_code(z: Tensor, like: Tensor) -> Tensor:
    """z (B, nz) replicated over the spatial size of ``like`` (B, C, H, W): (B, nz, H, W)."""
    return z[:, :, None, None].expand(-1, -1, like.shape[2], like.shape[3])


class ZUnet(nn.Module):
    """G(A, z): a U-Net whose input (``where="input"``) or every encoder level (``"all"``)
    also takes the code z (B, nz)."""

    def __init__(self, *, channels: int, nz: int, where: str, depth: int, base: int, norm: str):
        super().__init__()
        self.nz, self.where = nz, where
        self.unet = UnetGenerator(
            in_channels=channels + nz, out_channels=channels, depth=depth,
            base_channels=base, norm=norm, dropout=0.0,
        )  # fmt: skip
        self.multiple_of = self.unet.multiple_of
        if where == "all":  # each deeper level's conv also takes the nz channels of z
            for level in self.unet.encoder[1:]:
                conv = level[1]
                level[1] = Conv2d(
                    conv.in_channels + nz, conv.out_channels, kernel_size=4, stride=2,
                    padding=1, bias=conv.bias is not None,
                )  # fmt: skip

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        # x: (B, C, H, W) in [-1, 1]; z: (B, nz) -> (B, C, H, W) in [-1, 1]
        if self.where == "input":
            return self.unet(torch.cat([x, tile_code(z, x)], 1))
        skips: list[Tensor] = []
        h = x
        for down in self.unet.encoder:
            h = down(torch.cat([h, tile_code(z, h)], 1))
            skips.append(h)
        h = self.unet.decoder[0](skips[-1])
        for up, skip in zip(self.unet.decoder[1:], reversed(skips[:-1]), strict=True):
            h = up(torch.cat([skip, h], 1))
        return h


class _DownBlock(nn.Module):
    """norm, LeakyReLU, conv3x3, norm, LeakyReLU, conv3x3, avg-pool /2; shortcut avg-pool, 1x1."""

    def __init__(self, c_in: int, c_out: int, norm: str) -> None:
        super().__init__()
        bias = uses_bias(norm)
        self.body = nn.Sequential(
            norm_layer(norm, c_in), nn.LeakyReLU(0.2), Conv2d(c_in, c_in, 3, padding=1, bias=bias),
            norm_layer(norm, c_in), nn.LeakyReLU(0.2), Conv2d(c_in, c_out, 3, padding=1),
            nn.AvgPool2d(2),
        )  # fmt: skip
        self.shortcut = nn.Sequential(nn.AvgPool2d(2), Conv2d(c_in, c_out, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.shortcut(x)


class ResnetEncoder(nn.Module):
    """E(B) -> (mu, logvar), each (B, nz): widths nef * min(i + 1, 4) as in 'resnet_256'."""

    def __init__(self, *, channels: int, nz: int, base: int, blocks: int, norm: str) -> None:
        super().__init__()
        widths = [base * min(i + 1, 4) for i in range(blocks + 1)]
        layers: list[nn.Module] = [Conv2d(channels, base, 4, stride=2, padding=1)]
        layers += [_DownBlock(widths[i], widths[i + 1], norm) for i in range(blocks)]
        layers += [nn.LeakyReLU(0.2), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.mu = nn.Linear(widths[-1], nz)
        self.logvar = nn.Linear(widths[-1], nz)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.features(x)  # (B, widths[-1])
        return self.mu(h), self.logvar(h)


class MeanCode(nn.Module):
    """E's mean as the code of a reference image (``translate run --style-from``)."""

    def __init__(self, encoder: ResnetEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x)[0]
