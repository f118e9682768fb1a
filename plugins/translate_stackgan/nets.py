"""StackGAN's networks (Zhang et al. 2017, "StackGAN: Text to Photo-realistic Image Synthesis
with Stacked Generative Adversarial Networks", Sec. 3 and the supplementary's architecture):
conditioning augmentation, the stage-I and stage-II generators, and the matching-aware
discriminator (Reed et al. 2016, GAN-CLS) that judges (image, text) pairs.

D's input follows the core's conditional convention: the text vector broadcast as maps,
*then* the image channels (``condition_channels``), so the core's augmentations and R1 act
on the image only; D reads the vector back from the first pixel.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from translate.losses.latent import kl_normal, reparameterize


class ConditioningAugmentation(nn.Module):
    """c_hat ~ N(mu(phi_t), diag(sigma(phi_t))^2) (Sec. 3.1): a fully connected layer gives
    mu and log sigma^2 from the sentence embedding phi_t; training draws c_hat by the
    reparameterisation trick, inference takes mu (deterministic, so an export matches)."""

    def __init__(self, *, text_dim: int, condition_dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(text_dim, 2 * condition_dim)

    def forward(self, sentence: Tensor, sample: bool) -> tuple[Tensor, Tensor, Tensor]:
        mu, logvar = self.fc(sentence).chunk(2, 1)
        return (reparameterize(mu, logvar) if sample else mu), mu, logvar


def ca_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """D_KL(N(mu, Sigma) || N(0, I)) (Eq. 3's regulariser), averaged over the condition's
    dimensions and the batch as the official code does (so its weight 2.0 means the same)."""
    return kl_normal(mu, logvar) / mu.shape[1]


def damsm_term(models: Mapping[str, nn.Module], text: tuple[Tensor, ...], images: Tensor) -> Tensor:
    """AttnGAN's L_DAMSM (Xu et al. 2018, Eq. 14's second term) of G's images against their
    captions' (sentence, words, mask): the DAMSM loss through the fixed, pretrained image
    encoder ``models["I"]``, of the full-size image (an image pyramid's last three channels)."""
    from translate.text.damsm import damsm_loss

    return damsm_loss(text, models["I"](images[:, -3:]))[0]


def up_block(cin: int, cout: int) -> nn.Sequential:
    """Nearest x2, 3x3 conv, batch norm, ReLU (the paper's up-sampling block)."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(True),
    )


def halving_widths(start: int, n: int, floor: int = 8) -> list[int]:
    """``start``, halved n times (n + 1 widths), none below ``floor``."""
    return [max(start >> i, floor) for i in range(n + 1)]


class StageIGenerator(nn.Module):
    """(z, phi_t) -> a low-resolution image, mu, log sigma^2 (Sec. 3.2): its own CA, then FC
    of (z, c_hat) to 4x4 x (8 * channels), up-sampling blocks to ``image_size``, a 3x3 conv
    and tanh."""

    def __init__(
        self, *, latent_dim: int, text_dim: int, condition_dim: int, image_size: int, channels: int
    ):
        super().__init__()
        self.ca = ConditioningAugmentation(text_dim=text_dim, condition_dim=condition_dim)
        n = image_size.bit_length() - 3  # 4 -> image_size
        w = halving_widths(8 * channels, n)
        self.fc = nn.Sequential(
            nn.Linear(latent_dim + condition_dim, w[0] * 16, bias=False),
            nn.BatchNorm1d(w[0] * 16),
            nn.ReLU(True),
        )
        self.ups = nn.Sequential(*(up_block(w[i], w[i + 1]) for i in range(n)))
        self.out = nn.Sequential(nn.Conv2d(w[-1], 3, 3, 1, 1), nn.Tanh())
        self.start = w[0]

    def forward(self, z: Tensor, sentence: Tensor, sample: bool = False) -> tuple[Tensor, ...]:
        c, mu, logvar = self.ca(sentence, sample)
        h = self.fc(torch.cat([z.flatten(1), c], 1)).view(z.shape[0], self.start, 4, 4)
        return self.out(self.ups(h)), mu, logvar


class ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, 1, 1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(True),
            nn.Conv2d(c, c, 3, 1, 1, bias=False),
            nn.BatchNorm2d(c),
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x + self.body(x))


class StageIIGenerator(nn.Module):
    """(stage-I image, phi_t) -> an image 4x larger, mu, log sigma^2 (Sec. 3.3): its own CA;
    down-sample the image twice, join c_hat's maps, residual blocks, up-sample four times."""

    def __init__(
        self, *, text_dim: int, condition_dim: int, channels: int, residual_blocks: int
    ) -> None:
        super().__init__()
        self.ca = ConditioningAugmentation(text_dim=text_dim, condition_dim=condition_dim)
        c = channels
        self.encode = nn.Sequential(
            nn.Conv2d(3, c, 3, 1, 1),
            nn.ReLU(True),
            nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False),
            nn.BatchNorm2d(2 * c),
            nn.ReLU(True),
            nn.Conv2d(2 * c, 4 * c, 4, 2, 1, bias=False),
            nn.BatchNorm2d(4 * c),
            nn.ReLU(True),
        )
        self.join = nn.Sequential(
            nn.Conv2d(4 * c + condition_dim, 4 * c, 3, 1, 1, bias=False),
            nn.BatchNorm2d(4 * c),
            nn.ReLU(True),
        )
        self.res = nn.Sequential(*(ResBlock(4 * c) for _ in range(residual_blocks)))
        w = halving_widths(4 * c, 4)
        self.ups = nn.Sequential(*(up_block(w[i], w[i + 1]) for i in range(4)))
        self.out = nn.Sequential(nn.Conv2d(w[-1], 3, 3, 1, 1), nn.Tanh())

    def forward(self, image: Tensor, sentence: Tensor, sample: bool = False) -> tuple[Tensor, ...]:
        c, mu, logvar = self.ca(sentence, sample)
        h = self.encode(image)
        maps = c[..., None, None].expand(*c.shape, *h.shape[-2:])
        return self.out(self.ups(self.res(self.join(torch.cat([h, maps], 1))))), mu, logvar


class MatchingDiscriminator(nn.Module):
    """D(image, phi_t): strided 4x4 convs down to 4x4 x (8 * channels) (no norm on the first,
    batch norm after), the text compressed to ``text_out`` (N_d) by a linear layer and
    replicated 4x4, joined by a 3x3 conv, and a 4x4 conv to one logit (Sec. 3.2). Input:
    (B, text_dim + 3, S, S), the text maps first. ``unconditional``: also StackGAN++'s logit
    of the image alone, a 4x4 conv on the image features (official ``D_NET64``'s
    ``uncond_logits``), read by ``unconditional(x)``."""

    def __init__(
        self,
        *,
        text_dim: int,
        image_size: int,
        channels: int,
        text_out: int,
        unconditional: bool = False,
    ) -> None:
        super().__init__()
        n = image_size.bit_length() - 3
        w = [min(channels << i, 8 * channels) for i in range(n)]
        layers: list[nn.Module] = [nn.Conv2d(3, w[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for i in range(1, n):
            layers += [
                nn.Conv2d(w[i - 1], w[i], 4, 2, 1, bias=False),
                nn.BatchNorm2d(w[i]),
                nn.LeakyReLU(0.2, True),
            ]
        self.image = nn.Sequential(*layers)
        self.text_dim = text_dim
        self.text = nn.Sequential(nn.Linear(text_dim, text_out), nn.LeakyReLU(0.2, True))
        self.join = nn.Sequential(
            nn.Conv2d(w[-1] + text_out, w[-1], 3, 1, 1, bias=False),
            nn.BatchNorm2d(w[-1]),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(w[-1], 1, 4, 1, 0),
        )
        self.uncond = nn.Conv2d(w[-1], 1, 4, 1, 0) if unconditional else None

    def forward(self, x: Tensor) -> Tensor:
        t = self.text(x[:, : self.text_dim, 0, 0])
        h = self.image(x[:, self.text_dim :])
        maps = t[..., None, None].expand(*t.shape, *h.shape[-2:])
        return self.join(torch.cat([h, maps], 1)).flatten(1)

    def unconditional(self, x: Tensor) -> Tensor:
        """The logit of the image channels alone (the text maps of ``x`` are not read)."""
        if self.uncond is None:
            raise ValueError("this discriminator has no unconditional logit")
        return self.uncond(self.image(x[:, self.text_dim :])).flatten(1)


def with_text(images: Tensor, sentence: Tensor) -> Tensor:
    """D's input: ``sentence`` (B, E) as E constant maps, then the images (B, C, H, W)."""
    maps = sentence.to(images.dtype)[..., None, None].expand(*sentence.shape, *images.shape[-2:])
    return torch.cat([maps, images], 1)


class StackGANSampler(nn.Module):
    """The inference module: (z (B, Z, 1, 1), text (B, T)) -> images in [-1, 1], through
    stage I and (when present) stage II, each with its CA's mean. ``T`` is the sentence
    embedding's size (gigagan: the packed text, ``translate.text.encoder.pack_text``)."""

    def __init__(self, stage1: nn.Module, stage2: nn.Module | None) -> None:
        super().__init__()
        self.stage1, self.stage2 = stage1, stage2
        self.train(stage1.training)  # eval for sample and export, as the generator arrives

    def forward(self, z: Tensor, text: Tensor) -> Tensor:
        image = self.stage1(z, text)[0][:, -3:]  # gigagan: the last scale of its pyramid
        return image if self.stage2 is None else self.stage2(image, text)[0]
