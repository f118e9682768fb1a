"""MUNIT's networks (Huang et al. 2018, Sec. 3.2 and App. B, Fig. 3).

* ``ContentEncoder`` -- a 7x7 conv, ``n_downsample`` stride-2 4x4 convs, ``n_res`` residual
  blocks, instance norm throughout: the domain-invariant content code.
* ``StyleEncoder`` -- a 7x7 conv, four stride-2 4x4 convs (width doubling twice), global
  average pooling and a 1x1 conv to ``style_dim``; no instance norm (it would remove the
  style, Sec. 3.2).
* ``Decoder`` -- ``n_res`` residual blocks with AdaIN whose parameters an MLP makes from the
  style code, then ``n_downsample`` x (nearest upsampling, 5x5 conv, layer norm), a 7x7 conv
  and tanh.
* ``AutoEncoder`` -- one domain's three networks; ``Translation`` is the inference module
  x, style -> the other domain's decoder of x's content in that style.
"""

from __future__ import annotations

from torch import Tensor, nn

from translate.nn.adain import (
    AdaptiveInstanceNorm2d,
    LayerNorm2d,
    StyleMLP,
    adain_param_count,
    assign_adain_params,
)
from translate.nn.blocks import ResnetBlock
from translate.nn.norms import InstanceNorm2d


def conv(c_in: int, c_out: int, k: int, s: int, norm: str) -> nn.Sequential:
    """Reflect-padded conv, norm ("in", "ln", "none"), ReLU."""
    layers: list[nn.Module] = [
        nn.ReflectionPad2d(k // 2 if s == 1 else 1),
        nn.Conv2d(c_in, c_out, k, s),
    ]
    if norm == "in":
        layers.append(InstanceNorm2d(c_out, affine=False, track_running_stats=False))
    elif norm == "ln":
        layers.append(LayerNorm2d(c_out))
    return nn.Sequential(*layers, nn.ReLU(inplace=True))


class ContentEncoder(nn.Sequential):
    def __init__(self, *, dim: int, n_downsample: int, n_res: int) -> None:
        layers = [conv(3, dim, 7, 1, "in")]
        for _ in range(n_downsample):
            layers.append(conv(dim, 2 * dim, 4, 2, "in"))
            dim *= 2
        layers += [ResnetBlock(channels=dim, norm="instance") for _ in range(n_res)]
        super().__init__(*layers)
        self.out_channels = dim


class StyleEncoder(nn.Module):
    def __init__(self, *, dim: int, style_dim: int, n_downsample: int = 4) -> None:
        super().__init__()
        layers = [conv(3, dim, 7, 1, "none")]
        for i in range(n_downsample):
            nxt = dim * 2 if i < 2 else dim
            layers.append(conv(dim, nxt, 4, 2, "none"))
            dim = nxt
        layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(dim, style_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten(1)  # (B, style_dim)


class AdaINResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), AdaptiveInstanceNorm2d(c), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), AdaptiveInstanceNorm2d(c),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class Decoder(nn.Module):
    def __init__(self, *, dim: int, style_dim: int, n_upsample: int, n_res: int, mlp_dim: int):
        super().__init__()
        layers: list[nn.Module] = [AdaINResBlock(dim) for _ in range(n_res)]
        for _ in range(n_upsample):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), conv(dim, dim // 2, 5, 1, "ln")]
            dim //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(dim, 3, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.mlp = StyleMLP(style_dim, adain_param_count(self.net), hidden=mlp_dim)

    def forward(self, content: Tensor, style: Tensor) -> Tensor:
        assign_adain_params(self.mlp(style), self.net)
        out = self.net(content)
        for m in self.net.modules():  # no stale graph (or tensor a deepcopy refuses) is kept
            if isinstance(m, AdaptiveInstanceNorm2d):
                m.gamma = m.beta = None
        return out


class AutoEncoder(nn.Module):
    """One domain: content encoder, style encoder, decoder."""

    def __init__(self, cfg) -> None:
        super().__init__()
        self.content = ContentEncoder(
            dim=cfg.base_channels, n_downsample=cfg.n_downsample, n_res=cfg.n_res
        )
        self.style = StyleEncoder(dim=cfg.base_channels, style_dim=cfg.style_dim)
        self.decoder = Decoder(
            dim=self.content.out_channels, style_dim=cfg.style_dim, n_upsample=cfg.n_downsample,
            n_res=cfg.n_res, mlp_dim=cfg.mlp_dim,
        )  # fmt: skip

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.content(x), self.style(x)

    def decode(self, content: Tensor, style: Tensor) -> Tensor:
        return self.decoder(content, style)


class Translation(nn.Module):
    """x in the source domain, a style code (B, style_dim) -> the target domain's image."""

    def __init__(self, source: AutoEncoder, target: AutoEncoder) -> None:
        super().__init__()
        self.source, self.target = source, target
        self.training = source.training  # the wrapper is in the mode of the networks it holds

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        return self.target.decode(self.source.content(x), style)
