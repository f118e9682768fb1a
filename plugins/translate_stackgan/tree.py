"""``--generator stackgan-v2``: StackGAN++'s tree (Zhang et al. 2018, "StackGAN++: Realistic
Image Synthesis with Stacked Generative Adversarial Networks", TPAMI, Sec. 4; the official
StackGAN-v2 code's ``G_NET``, ``D_NET64/128/256`` and ``condGANTrainer``).

G: conditioning augmentation of the sentence (c_hat, with its KL term), then (z, c_hat) -> FC
-> 4x4 -> up-sampling blocks to the first branch's side (image_size / 4: 64 at 256); each
further branch joins c_hat's maps to the hidden features, applies residual blocks and one
up-sampling x2 (the official ``NEXT_STAGE_G``); every branch draws its image by a 3x3 conv and
tanh. The blocks use gated linear units as the official code (a conv to twice the width, batch
norm, GLU). The branches' images (e.g. 64, 128, 256) travel as one pyramid tensor (B, 3K, S,
S), low to high, each nearest-up-sampled to S (``gigagan.stack_levels``).

D: one branch per scale (``gigagan.MultiScaleDiscriminator`` with ``unconditional``), each
with a matching-aware logit of (image, text) and an unconditional logit of the image alone.
Each branch's D loss is GAN-CLS's (``translate.losses.matching``) plus ``--uncond-weight`` x
the core's D loss of the unconditional logit, real images real and fakes fake; G's loss is,
per branch, the core's generator loss of both logits (the second times the weight), summed
over the branches as the official ``train_Gnet``, plus the KL and, with ``--colour-weight``,
the colour-consistency term (``translate.losses.colour``). Everything goes through the core
objective, so each loss family and penalty applies to every logit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from translate.losses.colour import colour_consistency_loss
from translate.losses.matching import matching_aware_d_loss
from translate_stackgan.gigagan import MultiScaleDiscriminator, levels, n_scales, stack_levels
from translate_stackgan.nets import (
    ConditioningAugmentation,
    ca_kl,
    damsm_term,
    halving_widths,
    with_text,
)

if TYPE_CHECKING:  # pragma: no cover
    from translate.plugin import StepContext
    from translate_stackgan.config import StackGANConfig


def glu_conv(cin: int, cout: int) -> nn.Sequential:
    """3x3 conv to 2 * cout, batch norm, GLU over the channels (the official ``Block3x3_relu``)."""
    return nn.Sequential(
        nn.Conv2d(cin, 2 * cout, 3, 1, 1, bias=False), nn.BatchNorm2d(2 * cout), nn.GLU(1)
    )


def glu_up(cin: int, cout: int) -> nn.Sequential:
    """Nearest x2, then ``glu_conv`` (the official ``upBlock``)."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), glu_conv(cin, cout))


class GLUResBlock(nn.Module):
    """x + BN(conv(GLU-block(x))), no activation after the sum (the official ``ResBlock``)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            glu_conv(c, c), nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c)
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class NextBranch(nn.Module):
    """(hidden features (B, cin, s, s), c_hat (B, N_g)) -> features (B, cout, 2s, 2s): c_hat's
    maps joined, residual blocks, one up-sampling (the official ``NEXT_STAGE_G``)."""

    def __init__(self, cin: int, cout: int, *, condition_dim: int, residual_blocks: int) -> None:
        super().__init__()
        self.join = glu_conv(condition_dim + cin, cin)
        self.res = nn.Sequential(*(GLUResBlock(cin) for _ in range(residual_blocks)))
        self.up = glu_up(cin, cout)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        maps = c[..., None, None].expand(*c.shape, *h.shape[-2:])
        return self.up(self.res(self.join(torch.cat([maps, h], 1))))


class TreeGenerator(nn.Module):
    """(z (B, Z, 1, 1), sentence (B, E)) -> (pyramid (B, 3K, S, S), mu, log sigma^2): K
    branches (``gigagan.n_scales``: 3 from 32 px, at S/4, S/2, S; 2 at 16; 1 at 8)."""

    def __init__(
        self,
        *,
        latent_dim: int,
        text_dim: int,
        condition_dim: int,
        image_size: int,
        channels: int,
        residual_blocks: int,
    ) -> None:
        super().__init__()
        self.k = n_scales(image_size)
        n = (image_size >> (self.k - 1)).bit_length() - 3  # up-samplings from 4 to branch 1
        w = halving_widths(8 * channels, n + self.k - 1)
        self.ca = ConditioningAugmentation(text_dim=text_dim, condition_dim=condition_dim)
        self.fc = nn.Sequential(
            nn.Linear(latent_dim + condition_dim, 2 * 16 * w[0], bias=False),
            nn.BatchNorm1d(2 * 16 * w[0]),
            nn.GLU(1),
        )
        self.ups = nn.Sequential(*(glu_up(w[i], w[i + 1]) for i in range(n)))
        self.branches = nn.ModuleList(
            NextBranch(
                w[n + i], w[n + i + 1], condition_dim=condition_dim, residual_blocks=residual_blocks
            )
            for i in range(self.k - 1)
        )
        self.rgb = nn.ModuleList(
            nn.Sequential(nn.Conv2d(w[n + i], 3, 3, 1, 1), nn.Tanh()) for i in range(self.k)
        )
        self.start = w[0]

    def forward(self, z: Tensor, sentence: Tensor, sample: bool = False) -> tuple[Tensor, ...]:
        c, mu, logvar = self.ca(sentence, sample)
        h = self.fc(torch.cat([z.flatten(1), c], 1)).view(z.shape[0], self.start, 4, 4)
        h = self.ups(h)
        images = [self.rgb[0](h)]
        for branch, rgb in zip(self.branches, self.rgb[1:], strict=True):
            h = branch(h, c)
            images.append(rgb(h))
        return stack_levels(images), mu, logvar


def build_tree(cfg: StackGANConfig, d_args: dict[str, Any]) -> dict[str, nn.Module]:
    """G and D of ``--generator stackgan-v2``; D's unconditional heads only with a weight."""
    g = TreeGenerator(
        latent_dim=cfg.latent_dim, text_dim=cfg.text_dim, condition_dim=cfg.condition_dim,
        image_size=cfg.image_size, channels=cfg.g_channels, residual_blocks=cfg.residual_blocks,
    )  # fmt: skip
    d = MultiScaleDiscriminator(
        image_size=cfg.image_size, unconditional=cfg.uncond_weight > 0, **d_args
    )
    return {"G": g, "D": d}


# ---------------------------------------------------------------------------- losses
def branch_d_loss(
    objective: Any, branch: nn.Module, real: Tensor, fake: Tensor, sentence: Tensor, *,
    uncond_weight: float,
) -> tuple[Tensor, dict[str, Any], Tensor | None]:  # fmt: skip
    """One D branch's loss of real and fake images (B, 3, s, s) with their text (B, E):
    GAN-CLS's ``real + (fake + wrong) / 2`` on the conditional logit, plus ``uncond_weight``
    x the core's D loss of the unconditional logit. Returns (loss, logs, unconditional loss).

    The official trainer labels the wrong pair's unconditional logit *real*: that pair's image
    is a real image. Our wrong pair is the real image i with the text of sample i - 1, so its
    unconditional logit is the real image's own: the mean of the (real, fake) and (wrong, fake)
    losses, mirroring GAN-CLS's mean of (real, fake) and (real, wrong), is the (real, fake)
    loss, computed once."""
    e = sentence.shape[1]
    loss, logs = matching_aware_d_loss(
        objective, branch, real, fake, sentence, with_text, condition_channels=e
    )
    if uncond_weight <= 0:
        return loss, logs, None
    wrong_image = real  # the wrong pair (real image i, text i - 1) shows a real image
    uncond, _ = objective.discriminator_loss(
        branch.unconditional, with_text(wrong_image, sentence), with_text(fake, sentence),
        condition_channels=e,
    )  # fmt: skip
    return loss + uncond_weight * uncond, logs, uncond


def branch_g_loss(
    objective: Any, branch: nn.Module, real: Tensor, fake: Tensor, sentence: Tensor, *,
    uncond_weight: float,
) -> tuple[Tensor, Tensor, Tensor | None]:  # fmt: skip
    """One branch's G loss: the core's generator loss of the conditional logit plus
    ``uncond_weight`` x that of the unconditional one. Returns (loss, cond, uncond)."""
    e = sentence.shape[1]
    fake_in, real_in = with_text(fake, sentence), with_text(real, sentence)
    cond, _ = objective.generator_loss(branch, fake_in, real_in, condition_channels=e)
    if uncond_weight <= 0:
        return cond, cond, None
    uncond, _ = objective.generator_loss(
        branch.unconditional, fake_in, real_in, condition_channels=e
    )
    return cond + uncond_weight * uncond, cond, uncond


def tree_step(
    ctx: StepContext, real: Tensor, text: tuple[Tensor, ...], z: Tensor, cfg: StackGANConfig
) -> dict[str, Any]:
    """One training step of the tree: every D branch on its scale, then G on the sum.
    ``text``: the captions' (sentence, words, mask)."""
    G, D = ctx.models["G"], ctx.models["D"]
    sentence = text[0]
    u, k = cfg.uncond_weight, D.k
    with ctx.autocast(), torch.set_grad_enabled(ctx.update_generator):
        stack, mu, logvar = G(z, sentence, sample=True)
    fakes = levels(stack, k)
    reals = [F.avg_pool2d(real, 2 ** (k - 1 - i)) for i in range(k)]  # (B, 3, S / 2^j, ...)
    branches = list(zip(D.branches, reals, fakes, strict=True))
    with ctx.autocast():
        parts = [branch_d_loss(ctx.gan, b, r, f, sentence, uncond_weight=u) for b, r, f in branches]
        loss_d = torch.stack([p[0].float() for p in parts]).sum()
    ctx.optimize("D", loss_d)
    logs = {**parts[-1][1], **ctx.gan.logs({"D_loss": loss_d})}  # logits: the full-size branch
    if u > 0:
        logs.update(ctx.gan.logs({"D_uncond": torch.stack([p[2].float() for p in parts]).sum()}))
    if not ctx.update_generator:
        return logs
    with ctx.frozen("D"), ctx.autocast():
        terms = [branch_g_loss(ctx.gan, b, r, f, sentence, uncond_weight=u) for b, r, f in branches]
        loss_g = torch.stack([t[0].float() for t in terms]).sum()  # summed over the branches
        kl = ca_kl(mu.float(), logvar.float())
        values = {"G_adv": torch.stack([t[1].float() for t in terms]).sum(), "kl": kl}
        if u > 0:
            values["G_uncond"] = torch.stack([t[2].float() for t in terms]).sum()
        loss_g = loss_g + cfg.kl_weight * kl
        if cfg.colour_weight > 0:
            values["colour"] = colour_consistency_loss(fakes)
            loss_g = loss_g + cfg.colour_weight * values["colour"]
        if cfg.damsm_weight > 0:  # AttnGAN's L_DAMSM of the last branch's images (Eq. 14)
            values["damsm"] = damsm_term(ctx.models, text, stack)
            loss_g = loss_g + cfg.damsm_weight * values["damsm"]
    ctx.optimize("G", loss_g)
    return {**logs, **ctx.gan.logs(values)}
