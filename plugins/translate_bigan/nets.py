"""BiGAN's and ALI's networks: generator G(z), encoder E(x), and the joint discriminator
D(x, z) (Donahue et al. 2017, "Adversarial Feature Learning", Sec. 3 and 4.1; Dumoulin et al.
2017, "Adversarially Learned Inference", Sec. 2).

The permutation-invariant MNIST setting of the BiGAN paper (Sec. 4.1): every network is an MLP
with two 1024-unit hidden layers, batch norm, ReLU in G and leaky ReLU (0.2) in E and D, for
images of any side S (flattened, 3 S^2 inputs). D sees a pair as one tensor, ``pair(x, z)``:
z's entries as constant maps before the image's channels (the core objective's conditional
layout, ``condition_channels`` = Z), so the core's losses and penalties apply to pairs; D reads
z back from the maps' corner. With ALI's stochastic encoder, E outputs a mean and a log
standard deviation and samples z = mu + sigma * eps (reparameterised, Kingma and Welling 2014);
ALI's D drops out 20% of its hidden units.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

LEAK = 0.2


def pair(images: Tensor, z: Tensor) -> Tensor:
    """(x (B, 3, S, S), z (B, Z)) -> D's input (B, Z + 3, S, S): z as constant maps first."""
    b, k = z.shape
    maps = z.to(images.dtype).view(b, k, 1, 1).expand(b, k, *images.shape[-2:])
    return torch.cat([maps, images], 1)


def _mlp(widths: list[int], act: nn.Module, *, norm_from: int, dropout: float = 0.0) -> list:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(a, b, bias=i < norm_from))
        if i >= norm_from:
            layers.append(nn.BatchNorm1d(b))
        layers.append(act)
        if dropout:
            layers.append(nn.Dropout(dropout))
    return layers


class Generator(nn.Module):
    """z (B, Z) -> FC 1024 BN ReLU, FC 1024 BN ReLU, FC 3 S^2 tanh -> images (B, 3, S, S)."""

    def __init__(self, latent_dim: int, image_size: int, hidden: int = 1024) -> None:
        super().__init__()
        self.size = image_size
        self.net = nn.Sequential(
            *_mlp([latent_dim, hidden, hidden], nn.ReLU(True), norm_from=0),
            nn.Linear(hidden, 3 * image_size**2),
            nn.Tanh(),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(-1, 3, self.size, self.size)


class Encoder(nn.Module):
    """images (B, 3, S, S) -> FC 1024 lReLU, FC 1024 BN lReLU -> z (B, Z); ``stochastic`` (ALI):
    a mean and a log standard deviation, z = mu + sigma * eps while training, mu otherwise."""

    def __init__(
        self, latent_dim: int, image_size: int, hidden: int = 1024, *, stochastic: bool = False
    ) -> None:
        super().__init__()
        self.latent_dim, self.stochastic = latent_dim, stochastic
        self.net = nn.Sequential(
            nn.Flatten(),
            *_mlp([3 * image_size**2, hidden, hidden], nn.LeakyReLU(LEAK, True), norm_from=1),
            nn.Linear(hidden, latent_dim * (2 if stochastic else 1)),
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.net(x)
        if not self.stochastic:
            return out
        mean, log_std = out[:, : self.latent_dim], out[:, self.latent_dim :]
        if not self.training:
            return mean
        return mean + log_std.exp() * torch.randn_like(mean)


class JointDiscriminator(nn.Module):
    """``pair(x, z)`` (B, Z + 3, S, S) -> one logit (B, 1): x through FC 1024 lReLU, z through
    FC 1024 lReLU, their concatenation through FC 1024 BN lReLU and FC 1."""

    def __init__(
        self, latent_dim: int, image_size: int, hidden: int = 1024, *, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        act = nn.LeakyReLU(LEAK, True)
        self.x_path = nn.Sequential(
            nn.Flatten(), *_mlp([3 * image_size**2, hidden], act, norm_from=1, dropout=dropout)
        )
        self.z_path = nn.Sequential(*_mlp([latent_dim, hidden], act, norm_from=1, dropout=dropout))
        self.joint = nn.Sequential(
            *_mlp([2 * hidden, hidden], act, norm_from=0, dropout=dropout), nn.Linear(hidden, 1)
        )

    def forward(self, xz: Tensor) -> Tensor:
        z, x = xz[:, : self.latent_dim, 0, 0], xz[:, self.latent_dim :]
        return self.joint(torch.cat([self.x_path(x), self.z_path(z)], 1))


class Negated(nn.Module):
    """-D: the encoder's side of the game with the labels inverted (see the plugin)."""

    def __init__(self, discriminator: nn.Module) -> None:
        super().__init__()
        self.discriminator = discriminator

    def forward(self, x: Tensor) -> Tensor:
        return -self.discriminator(x)


def init_weights(module: nn.Module) -> nn.Module:
    """DCGAN's initialisation (ours: the papers name none here): N(0, 0.02) weights, zero
    biases, batch-norm scales N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm1d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module
