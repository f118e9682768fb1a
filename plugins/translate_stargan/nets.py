"""StarGAN's networks: a label-conditioned generator and a two-headed discriminator.

Choi et al., "StarGAN: Unified Generative Adversarial Networks for Multi-Domain Image-to-Image
Translation", CVPR 2018, Sec. 3 and Appendix (Table 4, Table 5):

* ``LabelConditionedGenerator`` -- G(x, c): the target-domain label ``c`` is "spatially
  replicated and concatenated with the input image" (Appendix) and the result goes through the
  CycleGAN-style ResNet generator (two stride-2 stages, residual blocks, instance norm; the
  paper uses 6 blocks at 128x128), reused from ``translate.nn``, with its first convolution
  left unnormalised: instance norm there would subtract the label maps (constant over space).
* ``StarDiscriminator`` -- one convolutional trunk (Conv4x4 stride 2 + LeakyReLU(0.01), widths
  doubling, no normalisation) with two heads: ``D_src``, a 3x3 convolution giving a PatchGAN
  real/fake logit map, and ``D_cls``, the domain-classification logits. The paper's ``D_cls``
  is a convolution whose kernel spans the whole final map (h/64 for 128x128); here it is a 3x3
  convolution averaged over positions, which gives the same logits shape at any input size.

``StarDiscriminator.forward(x)`` returns the real/fake logits only, so the core GAN objective
(every family, gradient penalties) uses it as any PatchGAN; ``forward(x, with_class=True)``
returns ``(logits, class_logits)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from translate.nn import ResnetGenerator


class LabelConditionedGenerator(nn.Module):
    """G(x, c) of StarGAN: label maps concatenated to the image, then a ResNet generator.

    Args:
        n_domains: length of the label vector ``c`` (domains or attributes).
        base_channels: width of the first and last convolution (paper: 64).
        n_blocks: residual blocks at the bottleneck (paper: 6).
        norm: ``"instance"`` (paper), ``"batch"`` or ``"none"``.
    """

    def __init__(
        self, *, n_domains: int, base_channels: int = 64, n_blocks: int = 6, norm: str = "instance"
    ) -> None:
        super().__init__()
        if n_domains < 1:
            raise ValueError(f"n_domains must be at least 1, got {n_domains}")
        self.n_domains = n_domains
        self.net = ResnetGenerator(
            in_channels=3 + n_domains,
            out_channels=3,
            base_channels=base_channels,
            n_blocks=n_blocks,
            n_downsampling=2,
            norm=norm,
        )
        # The stem is not normalised: instance (or batch) norm right after the first
        # convolution would subtract the label maps' contribution, which is spatially constant,
        # so G could not see the label (the authors' code keeps it only through the zero
        # padding at the borders). After an unnormalised stem the ReLU makes it input-dependent.
        self.net.stem[2] = nn.Identity()

    def forward(self, x: Tensor, label: Tensor) -> Tensor:
        # x: (B, 3, H, W) in [-1, 1]; label: (B, n_domains) in {0, 1}
        maps = label.to(x.dtype)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        return self.net(torch.cat([x, maps], 1))  # (B, 3, H, W) in [-1, 1]


class StarDiscriminator(nn.Module):
    """StarGAN's discriminator: a shared trunk, a PatchGAN real/fake head and a domain head.

    Blocks (``C_k = base_channels * 2 ** k``)::

        0..n-1   Conv4x4 s2 p1 (C_{k-1} -> C_k), LeakyReLU(0.01)
        src      Conv3x3 s1 p1 (C_{n-1} -> 1)              # real/fake logits (B, 1, h, w)
        cls      Conv3x3 s1 p1 (C_{n-1} -> n_domains), mean over positions  # (B, n_domains)

    Args:
        n_domains: length of the label vector.
        base_channels: width of the first block (paper: 64).
        n_layers: stride-2 blocks (paper: 6 for 128x128 images); inputs need at least
            ``2 ** n_layers`` pixels per side.
    """

    def __init__(self, *, n_domains: int, base_channels: int = 64, n_layers: int = 6) -> None:
        super().__init__()
        if n_domains < 1 or base_channels < 1 or n_layers < 1:
            raise ValueError("n_domains, base_channels and n_layers must be at least 1")
        self.n_domains = n_domains
        blocks: list[nn.Module] = []
        c_in = 3
        for k in range(n_layers):
            c_out = base_channels * 2**k
            blocks.append(
                nn.Sequential(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.01))
            )
            c_in = c_out
        self.trunk = nn.Sequential(*blocks)
        self.src = nn.Conv2d(c_in, 1, 3, padding=1, bias=False)
        self.cls = nn.Conv2d(c_in, n_domains, 3, padding=1, bias=False)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """The activation after every trunk block, then the real/fake logits (feature matching)."""
        features = []
        h = x
        for block in self.trunk:
            h = block(h)
            features.append(h)
        features.append(self.src(h))
        return features

    def forward(self, x: Tensor, with_class: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        h = self.trunk(x)  # (B, C, H / 2**n, W / 2**n)
        logits = self.src(h)  # (B, 1, h, w)
        if not with_class:
            return logits
        return logits, self.cls(h).mean((2, 3))  # (B, n_domains)
