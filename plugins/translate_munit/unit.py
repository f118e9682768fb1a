"""UNIT (Liu, Breuel, Kautz 2017, "Unsupervised Image-to-Image Translation Networks", NeurIPS):
the shared-latent-space VAE-GAN that MUNIT extends, as ``--mode unit``.

Both domains map to one latent space: E_1, E_2 end in *shared* high-level layers and G_1, G_2
begin with *shared* layers (the weight-sharing constraint, Sec. 2). Here the shared part is the
last residual block of the encoders and the first of the decoders (``Shared``, model ``S``);
each domain's private layers are ``Private`` (``G_A``, ``G_B``). The encoder gives the mean of
q(z | x) = N(E(x), I); z = E(x) + eps.

The objective (Eq. 2-5), with the official configs' weights:

* VAE (Eq. 3): lambda_1 KL(q(z|x) || N(0, I)) + lambda_2 |G(z) - x| (lambda_x = 10); with unit
  variance the KL is 1/2 ||mu||^2 up to a constant, taken as mean(mu^2) as the official code
  does (``kl_unit_variance``), lambda_kl = 0.01;
* GAN (Eq. 4): D_2 judges x_{1->2} = G_2(z_1), D_1 judges x_{2->1};
* cycle (Eq. 5): |G_1(E_2(x_{1->2}) + eps) - x_1| (lambda_unit_cyc = 10) and the KL of the
  translation's latent (lambda_kl).

Inference is deterministic: x_{1->2} = G_2(E_1(x_1)), the mean (one answer per input).
"""

from __future__ import annotations

from torch import Tensor, nn

from translate.nn.blocks import ResnetBlock
from translate_munit.nets import ContentEncoder, conv


def kl_unit_variance(mu: Tensor) -> Tensor:
    """KL(N(mu, I) || N(0, I)) = 1/2 sum(mu^2), as the official code takes it: mean(mu^2)."""
    return mu.pow(2).mean()


class Private(nn.Module):
    """One domain's own layers: the encoder up to the shared block (7x7 conv, stride-2 convs,
    ``n_res - 1`` residual blocks) and the decoder after it (``n_res - 1`` residual blocks,
    upsampling + 5x5 conv + layer norm, 7x7 conv, tanh)."""

    def __init__(self, cfg) -> None:
        super().__init__()
        self.encoder = ContentEncoder(
            dim=cfg.base_channels, n_downsample=cfg.n_downsample, n_res=cfg.n_res - 1
        )
        dim = self.encoder.out_channels
        layers: list[nn.Module] = [ResnetBlock(channels=dim) for _ in range(cfg.n_res - 1)]
        for _ in range(cfg.n_downsample):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), conv(dim, dim // 2, 5, 1, "ln")]
            dim //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(dim, 3, 7), nn.Tanh()]
        self.decoder = nn.Sequential(*layers)


class Shared(nn.Module):
    """The shared high-level layers: the encoders' last residual block, the decoders' first."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.encoder = ResnetBlock(channels=channels)
        self.decoder = ResnetBlock(channels=channels)


def encode(own: Private, shared: Shared, x: Tensor) -> Tensor:
    """The mean of q(z | x): (B, C, h, w)."""
    return shared.encoder(own.encoder(x))


def decode(own: Private, shared: Shared, z: Tensor) -> Tensor:
    return own.decoder(shared.decoder(z))


class UnitTranslation(nn.Module):
    """x in the source domain -> G_target(E_source(x)) (the latent's mean)."""

    def __init__(self, source: Private, shared: Shared, target: Private) -> None:
        super().__init__()
        self.source, self.shared, self.target = source, shared, target
        self.training = source.training

    def forward(self, x: Tensor) -> Tensor:
        return decode(self.target, self.shared, encode(self.source, self.shared, x))


def unit_terms(
    own_a: Private, own_b: Private, shared: Shared, x_a: Tensor, x_b: Tensor,
    eps: tuple[Tensor, Tensor, Tensor, Tensor],
) -> dict[str, Tensor]:  # fmt: skip
    """The generator's passes and non-adversarial terms of one step (Eq. 3, 5), given the
    noises (of z_a, z_b, and of the translations' latents), each shaped like the latent."""
    from translate.losses import l1_loss

    h_a, h_b = encode(own_a, shared, x_a), encode(own_b, shared, x_b)
    z_a, z_b = h_a + eps[0], h_b + eps[1]
    x_ab, x_ba = decode(own_b, shared, z_a), decode(own_a, shared, z_b)
    h_ab, h_ba = encode(own_b, shared, x_ab), encode(own_a, shared, x_ba)  # re-encoded
    return {
        "x_ab": x_ab,
        "x_ba": x_ba,
        "recon_x": l1_loss(decode(own_a, shared, z_a), x_a)
        + l1_loss(decode(own_b, shared, z_b), x_b),
        "kl": kl_unit_variance(h_a) + kl_unit_variance(h_b),
        "cyc": l1_loss(decode(own_a, shared, h_ab + eps[2]), x_a)
        + l1_loss(decode(own_b, shared, h_ba + eps[3]), x_b),
        "kl_cyc": kl_unit_variance(h_ab) + kl_unit_variance(h_ba),
    }
