"""``--generator gigagan``: GigaGAN's generator and multi-scale discriminator at small scale
(Kang et al. 2023, "Scaling up GANs for Text-to-Image Synthesis", Sec. 3, Fig. 4).

G: the sentence goes through CA (as StackGAN's G, for the KL term) and, with z, an MLP gives
the style code w (Sec. 3.2: w = M(z, t_global)); the words, projected, are the text tokens
t_local. From a learned 4x4 constant, each scale up-samples and applies two sample-adaptive
convolutions (``translate.nn.adaptive.AdaptiveConv2d``: a filter bank mixed per sample by w,
Eq. 3), interleaved with self-attention and cross-attention to the tokens at the sides up to
``attention_max``; every scale from 8 px has a toRGB, summed up the scales with a linear
output (StyleGAN2's skip outputs, no tanh: with one, a run on the white-background synthetic
shapes saturated it and collapsed to blank images), and the images of the last three scales
are G's multi-scale outputs.

The pyramid travels as one tensor (B, 3 * K, S, S), each scale nearest-up-sampled to S (low
to high; the last three channels are the image), so the core objective sees one D input;
``MultiScaleDiscriminator`` average-pools each scale back (exact) and judges each, with the
text, by its own matching-aware branch; the logits of the scales are averaged by the core
(Sec. 3.3, "multi-scale input, multi-scale output" D with matching-aware pairs).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from translate.nn.adaptive import AdaptiveConv2d, CrossAttention, SelfAttention
from translate.text.encoder import unpack_text
from translate_stackgan.nets import ConditioningAugmentation, MatchingDiscriminator

#: Scales of the multi-scale outputs (the image and the two below it, from 8 px).
SCALES = 3


def n_scales(image_size: int) -> int:
    return min(SCALES, image_size.bit_length() - 3)


def stack_levels(images: list[Tensor]) -> Tensor:
    """Images of sides S / 2^(k-1) ... S (low to high) -> one pyramid tensor (B, 3k, S, S),
    each nearest-up-sampled to S (the last three channels are the full-size image)."""
    s = images[-1].shape[-1]
    return torch.cat(
        [F.interpolate(x, size=s, mode="nearest") for x in images[:-1]] + [images[-1]], 1
    )


def levels(stack: Tensor, k: int) -> list[Tensor]:
    """The inverse of ``stack_levels``: (B, 3k, S, S) -> k images at their own sides, each
    average-pooled back (exact for a nearest-up-sampled level)."""
    out = []
    for i in range(k):
        f, level = 2 ** (k - 1 - i), stack[:, 3 * i : 3 * i + 3]
        out.append(F.avg_pool2d(level, f) if f > 1 else level)
    return out


def pyramid(images: Tensor, k: int) -> Tensor:
    """(B, 3, S, S) -> (B, 3k, S, S): the image average-pooled by 2^(k-1) ... 1 (low to high),
    each nearest-up-sampled back to S: the real images' counterpart of G's outputs."""
    return stack_levels([F.avg_pool2d(images, 2 ** (k - 1 - i)) for i in range(k)])


class GigaGANGenerator(nn.Module):
    """(z (B, Z, 1, 1), packed text (B, T)) -> (pyramid (B, 3K, S, S), mu, log sigma^2)."""

    def __init__(
        self,
        *,
        latent_dim: int,
        text_dim: int,
        condition_dim: int,
        image_size: int,
        channels: int,
        kernels: int,
        heads: int,
        attention_max: int,
    ) -> None:
        super().__init__()
        self.text_dim, self.k = text_dim, n_scales(image_size)
        self.ca = ConditioningAugmentation(text_dim=text_dim, condition_dim=condition_dim)
        style = 4 * channels
        self.mapping = nn.Sequential(
            nn.Linear(latent_dim + condition_dim, style),
            nn.LeakyReLU(0.2),
            nn.Linear(style, style),
            nn.LeakyReLU(0.2),
        )
        width = max(8, (8 * channels) // max(1, heads)) * heads
        self.tokens = nn.Linear(text_dim, width)
        n = image_size.bit_length() - 2  # sides 4 .. S
        widths = [max(heads * 4, (width >> max(0, i - 1)) // heads * heads) for i in range(n)]
        self.const = nn.Parameter(torch.randn(1, widths[0], 4, 4))
        self.convs = nn.ModuleList()
        self.attn = nn.ModuleList()
        self.rgb = nn.ModuleList()
        for i in range(n):
            cin = widths[max(0, i - 1)] if i else widths[0]
            self.convs.append(
                nn.ModuleList(
                    [
                        AdaptiveConv2d(cin, widths[i], style_dim=style, kernels=kernels),
                        AdaptiveConv2d(widths[i], widths[i], style_dim=style, kernels=kernels),
                    ]
                )
            )
            side = 4 << i
            self.attn.append(
                nn.ModuleList(
                    [SelfAttention(widths[i], heads), CrossAttention(widths[i], width, heads)]
                )
                if side <= attention_max
                else nn.ModuleList()
            )
            self.rgb.append(nn.Conv2d(widths[i], 3, 1) if side >= 8 else nn.Identity())

    def forward(self, z: Tensor, text: Tensor, sample: bool = False) -> tuple[Tensor, ...]:
        sentence, words, mask = unpack_text(text, self.text_dim)
        c, mu, logvar = self.ca(sentence, sample)
        w = self.mapping(torch.cat([z.flatten(1), c], 1))
        tokens = self.tokens(words)
        h = self.const.expand(z.shape[0], -1, -1, -1)
        rgb, outputs = None, []
        for i, (convs, attn, to_rgb) in enumerate(
            zip(self.convs, self.attn, self.rgb, strict=True)
        ):
            if i:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = F.leaky_relu(convs[0](h, w), 0.2)
            if len(attn):  # interleaved: self-attention, cross-attention to the words
                h = attn[1](attn[0](h), tokens, mask)
            h = F.leaky_relu(convs[1](h, w), 0.2)
            if isinstance(to_rgb, nn.Conv2d):
                up = None if rgb is None else F.interpolate(rgb, scale_factor=2, mode="bilinear")
                rgb = to_rgb(h) if up is None else up + to_rgb(h)
                outputs.append(rgb)  # linear, as StyleGAN2's toRGB sum (no tanh)
        return stack_levels(outputs[-self.k :]), mu, logvar


class MultiScaleDiscriminator(nn.Module):
    """(B, E + 3K, S, S) -> K logits, one matching-aware branch per scale (the text maps
    first, then the pyramid low to high). ``unconditional``: each branch also has StackGAN++'s
    logit of the image alone (``MatchingDiscriminator.unconditional``; ``tree.py``)."""

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
        self.text_dim, self.k = text_dim, n_scales(image_size)
        self.branches = nn.ModuleList(
            MatchingDiscriminator(
                text_dim=text_dim,
                image_size=image_size >> (self.k - 1 - i),
                channels=channels,
                text_out=text_out,
                unconditional=unconditional,
            )
            for i in range(self.k)
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        e = self.text_dim
        return [
            branch(torch.cat([x[:, :e, : level.shape[-2], : level.shape[-1]], level], 1))
            for branch, level in zip(self.branches, levels(x[:, e:], self.k), strict=True)
        ]
