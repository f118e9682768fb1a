"""Class-conditional networks.

G (``--generator dcgan``): the one-hot class is concatenated to z (Mirza and Osindero 2014), so
one DCGAN generator maps ``cat([z, onehot])`` (B, Z + K, 1, 1) to an image; ``biggan``: the same
input through BigGAN's generator (``translate.nn.biggan``: class-conditional batch norm from a
shared embedding, hierarchical z). D (a DCGAN discriminator, or BigGAN's residual one) sees
``cat([onehot maps, image])`` (the core objective's conditional layout: condition channels
first) and uses the class as ``conditioning`` says:

* ``concat``: the one-hot maps are input channels of a DCGAN discriminator (Mirza and
  Osindero 2014);
* ``acgan``: D ignores them for its real/fake logit and has an auxiliary classifier head on its
  features (Odena et al. 2017, "Conditional Image Synthesis with Auxiliary Classifier GANs");
* ``projection``: logit = psi(phi(x)) + <embed(y), sum-pooled phi(x)> (Miyato and Koyama
  2018, "cGANs with Projection Discriminator", Eq. 3).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from translate.nn.biggan import ResidualDiscriminator
from translate.nn.dcgan import DCGANDiscriminator

CONDITIONINGS = ("concat", "acgan", "projection")
ARCHITECTURES = ("dcgan", "biggan")


class ClassConditioned(nn.Module):
    """G(z, onehot) = G(cat([z, onehot])): the inference module, with the class an input of its
    own (the ONNX export's second input) rather than the latent's last channels."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.train(generator.training)  # eval for sample and export, as the generator arrives

    def forward(self, z: Tensor, onehot: Tensor) -> Tensor:
        # z: (B, Z, 1, 1); onehot: (B, K) -> (B, 3, S, S) in [-1, 1]
        return self.generator(torch.cat([z, onehot.to(z.dtype)[:, :, None, None]], 1))


class ConditionalDiscriminator(nn.Module):
    """``cat([onehot maps (K), image (3)])`` (B, K + 3, S, S) -> one logit (B, 1, 1, 1)."""

    def __init__(
        self,
        *,
        image_size: int,
        n_classes: int,
        conditioning: str,
        base_channels: int = 64,
        extra_layers: int = 0,
        architecture: str = "dcgan",
        attention: int = 0,
    ) -> None:
        super().__init__()
        if conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning must be one of {CONDITIONINGS}, got {conditioning!r}")
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
        self.n_classes, self.conditioning = n_classes, conditioning
        in_channels = 3 + (n_classes if conditioning == "concat" else 0)
        residual = architecture == "biggan"
        self.body: DCGANDiscriminator | ResidualDiscriminator
        if residual:  # BigGAN's D: spectral norm throughout, sum-pooled features
            self.body = ResidualDiscriminator(
                image_size=image_size,
                in_channels=in_channels,
                base_channels=base_channels,
                extra_blocks=extra_layers,
                attention=attention,
            )
        else:
            self.body = DCGANDiscriminator(
                image_size=image_size,
                in_channels=in_channels,
                base_channels=base_channels,
                extra_layers=extra_layers,
            )
        width = self.body.feature_channels
        if conditioning == "projection":
            self.embed = nn.Linear(n_classes, width, bias=False)  # an embedding of one-hots
            if residual:  # BigGAN's D embeds with spectral norm too
                self.embed = spectral_norm(self.embed)
        if conditioning == "acgan":
            self.classifier: nn.Module = (
                spectral_norm(nn.Linear(width, n_classes))  # sum-pooled features -> K logits
                if residual
                else nn.Conv2d(width, n_classes, 4, 1, 0)  # 4x4 -> K logits
            )

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x[:, : self.n_classes], x[:, self.n_classes :]

    def forward(self, x: Tensor) -> Tensor:
        cond, image = self._split(x)
        if self.conditioning == "concat":
            return self.body(x)
        h = self.body.features(image)  # (B, F, 4, 4)
        logit = self.body.head(h)
        if self.conditioning == "projection":
            y = cond.mean((2, 3))  # (B, K) one-hot
            proj = (self.embed(y) * h.sum((2, 3))).sum(1)
            logit = logit + proj.view(-1, 1, 1, 1)
        return logit

    def classify(self, x: Tensor) -> Tensor:
        """AC-GAN's auxiliary classifier: class logits (B, K) of the image channels."""
        _, image = self._split(x)
        h = self.body.features(image)
        if isinstance(self.body, ResidualDiscriminator):
            return self.classifier(self.body.pooled(h))
        return self.classifier(h).flatten(1)
