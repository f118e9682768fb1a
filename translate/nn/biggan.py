"""A small BigGAN-style class-conditional generator and its residual projection discriminator.

Brock, Donahue and Simonyan 2019, "Large Scale GAN Training for High Fidelity Natural Image
Synthesis" (Sec. 3 and Appendix B, Fig. 15), scaled down:

* G: z is split into chunks (hierarchical latent): the first is projected by a linear layer to a
  4x4 map, each residual up-block gets one more. A block is BN-ReLU-upsample-conv3x3-BN-ReLU-
  conv3x3 with an upsample-conv1x1 skip; its batch norms are *class-conditional*: their gain
  and bias are linear functions of ``cat(shared class embedding, z chunk)``, one embedding of
  the class shared by every block. Optional SAGAN self-attention (Zhang et al. 2019) after the
  block that reaches ``attention`` pixels. Output: BN-ReLU-conv3x3-tanh.
* D: residual down-blocks (ReLU-conv3x3-ReLU-conv3x3-avgpool, conv1x1-avgpool skip; the first
  block without the leading ReLU), ReLU, global sum pooling, a linear logit; conditioning on the
  class is the caller's (``translate_cgan.nets``: projection, AC-GAN or concatenated maps).

Both use spectral norm on every convolution and linear layer, the self-attention block's 1x1
convolutions included (SAGAN, Zhang et al. 2019, Sec. 5;
BigGAN keeps it in G and D) and orthogonal initialisation (BigGAN, Appendix C). G's shared
embedding is exempt from orthogonal regularisation (``no_ortho_parameters``), as in BigGAN.

G's input is the cgan latent ``cat([z, onehot])`` (B, Z + K, 1, 1), like the DCGAN generator's;
the embedding is a bias-free linear map of the one-hot (an ``nn.Embedding`` lookup, written as a
matrix product so that any one-hot tensor, and the ONNX export, work).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm

from translate.nn.blocks import SelfAttention2d
from translate.nn.dcgan import stages


def _sn(layer: nn.Module) -> nn.Module:
    """Orthogonal initialisation (BigGAN), then spectral norm (Miyato et al. 2018)."""
    nn.init.orthogonal_(layer.weight)  # type: ignore[arg-type]
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)  # type: ignore[arg-type]
    return spectral_norm(layer)


def _sn_attention(channels: int) -> SelfAttention2d:
    """SAGAN's self-attention block with spectral norm on its query, key and value 1x1
    convolutions, as SAGAN (Zhang et al. 2019, Sec. 4: SN in G and D) and BigGAN apply it."""
    block = SelfAttention2d(channels=channels)
    block.query, block.key, block.value = (_sn(m) for m in (block.query, block.key, block.value))
    return block


def z_chunks(latent_dim: int, slots: int) -> list[int]:
    """Sizes of the hierarchical latent's chunks: ``latent_dim`` split as evenly as possible
    into ``slots`` parts (the first ones one larger)."""
    if latent_dim < slots:
        raise ValueError(f"latent_dim {latent_dim} must be at least {slots} (one entry per chunk)")
    base, extra = divmod(latent_dim, slots)
    return [base + (1 if i < extra else 0) for i in range(slots)]


def generator_sides(image_size: int) -> list[int]:
    """Sides of G's feature maps after each up-block (where self-attention can go)."""
    return [2**k for k in range(3, image_size.bit_length())]


def discriminator_sides(image_size: int, extra_blocks: int = 0) -> list[int]:
    """Sides of D's feature maps after each block (where self-attention can go)."""
    downs = [image_size // 2**k for k in range(1, stages(image_size) + 1)]
    return ([image_size] if extra_blocks else []) + downs


def _check_attention_width(net: str, width: int, side: int) -> None:
    if width < 8:  # SAGAN's query/key have channels // 8 channels
        raise ValueError(
            f"attention: {net} has {width} channels at {side}-pixel maps; self-attention needs "
            "at least 8 (raise --base-channels or choose another side)"
        )


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose gain and bias are linear in a conditioning vector (de Vries et al. 2017;
    BigGAN's shared-embedding form): ``BN(x) * (1 + W_g c) + W_b c``."""

    def __init__(self, *, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain = _sn(nn.Linear(cond_dim, channels, bias=False))
        self.bias = _sn(nn.Linear(cond_dim, channels, bias=False))

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        # x: (B, C, H, W); cond: (B, cond_dim)
        gain = 1 + self.gain(cond)[:, :, None, None]
        return self.norm(x) * gain + self.bias(cond)[:, :, None, None]


class GBlock(nn.Module):
    """BigGAN's residual generator block (Fig. 15b), upsampling 2x when ``up``."""

    def __init__(self, *, in_channels: int, out_channels: int, cond_dim: int, up: bool) -> None:
        super().__init__()
        self.up = up
        self.bn1 = ConditionalBatchNorm2d(channels=in_channels, cond_dim=cond_dim)
        self.conv1 = _sn(nn.Conv2d(in_channels, out_channels, 3, 1, 1))
        self.bn2 = ConditionalBatchNorm2d(channels=out_channels, cond_dim=cond_dim)
        self.conv2 = _sn(nn.Conv2d(out_channels, out_channels, 3, 1, 1))
        learn_skip = up or in_channels != out_channels
        self.skip = _sn(nn.Conv2d(in_channels, out_channels, 1)) if learn_skip else nn.Identity()

    def _upsample(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="nearest") if self.up else x

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        h = self._upsample(F.relu(self.bn1(x, cond)))
        h = self.conv2(F.relu(self.bn2(self.conv1(h), cond)))
        return h + self.skip(self._upsample(x))


class BigGANGenerator(nn.Module):
    """``cat([z, onehot])`` (B, Z + K, 1, 1) -> image (B, C, S, S) in [-1, 1].

    ``stages(image_size)`` up-blocks from 4x4 (widths halve from ``base_channels * 2**(n-1)``),
    then ``extra_blocks`` residual blocks at full resolution (capacity for tiny images); the
    latent z is split into one chunk for the first linear layer and one per block.
    ``attention``: side in pixels of the feature map followed by self-attention (0: none)."""

    def __init__(
        self,
        *,
        latent_dim: int,
        n_classes: int,
        image_size: int,
        out_channels: int = 3,
        base_channels: int = 64,
        extra_blocks: int = 0,
        shared_dim: int = 128,
        attention: int = 0,
    ) -> None:
        super().__init__()
        n = stages(image_size)
        self.latent_dim, self.n_classes = latent_dim, n_classes
        self.chunks = z_chunks(latent_dim, 1 + n + extra_blocks)
        self.shared = nn.Linear(n_classes, shared_dim, bias=False)  # BigGAN's shared embedding
        nn.init.normal_(self.shared.weight, 0.0, 1.0)  # as nn.Embedding's
        width = base_channels * 2 ** (n - 1)
        self.width0 = width
        self.linear = _sn(nn.Linear(self.chunks[0], width * 4 * 4))
        self.blocks = nn.ModuleList()
        self.attention = nn.ModuleDict()
        side = 4
        for i in range(n + extra_blocks):
            up = i < n
            out = max(width // 2, 1) if up else width
            cond_dim = shared_dim + self.chunks[i + 1]
            self.blocks.append(
                GBlock(in_channels=width, out_channels=out, cond_dim=cond_dim, up=up)
            )
            width, side = out, side * 2 if up else side
            if attention and side == attention and not self.attention:
                _check_attention_width("G", width, side)
                self.attention[str(i)] = _sn_attention(width)
        if attention and not self.attention:
            sides = ", ".join(map(str, generator_sides(image_size)))
            raise ValueError(f"attention: no block of G has {attention}-pixel maps ({sides})")
        self.out_norm = nn.BatchNorm2d(width)
        self.out = _sn(nn.Conv2d(width, out_channels, 3, 1, 1))

    def no_ortho_parameters(self) -> list[nn.Parameter]:
        """Parameters orthogonal regularisation leaves alone (BigGAN: the shared embedding)."""
        return [self.shared.weight]

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, Z + K, 1, 1): the noise, then the class one-hot
        flat = x.flatten(1)
        z, onehot = flat[:, : self.latent_dim], flat[:, self.latent_dim :]
        parts = torch.split(z, self.chunks, dim=1)
        embed = self.shared(onehot)  # (B, shared_dim)
        h = self.linear(parts[0]).view(-1, self.width0, 4, 4)
        for i, block in enumerate(self.blocks):
            h = block(h, torch.cat([embed, parts[i + 1]], 1))
            if str(i) in self.attention:
                h = self.attention[str(i)](h)
        return torch.tanh(self.out(F.relu(self.out_norm(h))))


class DBlock(nn.Module):
    """BigGAN's residual discriminator block (Fig. 15c), halving the side when ``down``."""

    def __init__(
        self, *, in_channels: int, out_channels: int, down: bool, preactivation: bool
    ) -> None:
        super().__init__()
        self.down, self.preactivation = down, preactivation
        self.conv1 = _sn(nn.Conv2d(in_channels, out_channels, 3, 1, 1))
        self.conv2 = _sn(nn.Conv2d(out_channels, out_channels, 3, 1, 1))
        learn_skip = down or in_channels != out_channels
        self.skip = _sn(nn.Conv2d(in_channels, out_channels, 1)) if learn_skip else nn.Identity()

    def _downsample(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, 2) if self.down else x

    def forward(self, x: Tensor) -> Tensor:
        if not self.preactivation:  # the first block (SNGAN's "optimized" block): pool, then skip
            h = self._downsample(self.conv2(F.relu(self.conv1(x))))
            return h + self.skip(self._downsample(x))
        h = self._downsample(self.conv2(F.relu(self.conv1(F.relu(x)))))
        return h + self._downsample(self.skip(x))


class ResidualDiscriminator(nn.Module):
    """image (B, C, S, S) -> features (B, F, 4, 4) -> one logit per image (B, 1, 1, 1).

    ``features`` ends with the ReLU; the logit is a linear map of the features summed over
    positions (``pooled``), which is also what projection and AC-GAN heads read."""

    def __init__(
        self,
        *,
        image_size: int,
        in_channels: int = 3,
        base_channels: int = 64,
        extra_blocks: int = 0,
        attention: int = 0,
    ) -> None:
        super().__init__()
        n = stages(image_size)
        # (out channels, downsample) per block: full-resolution blocks first (G's mirror)
        plan = [(base_channels, False)] * extra_blocks
        plan += [(base_channels * 2**i, True) for i in range(n)]
        layers: list[nn.Module] = []
        width, side, placed = in_channels, image_size, False
        for i, (out, down) in enumerate(plan):
            layers.append(
                DBlock(in_channels=width, out_channels=out, down=down, preactivation=i > 0)
            )
            width, side = out, side // 2 if down else side
            if attention and side == attention and not placed:
                _check_attention_width("D", width, side)
                layers.append(_sn_attention(width))
                placed = True
        if attention and not placed:
            sides = ", ".join(map(str, discriminator_sides(image_size, extra_blocks)))
            raise ValueError(f"attention: no block of D has {attention}-pixel maps ({sides})")
        layers.append(nn.ReLU())
        self.blocks = nn.Sequential(*layers)
        self.feature_channels = width
        self.linear = _sn(nn.Linear(width, 1))

    def features(self, x: Tensor) -> Tensor:
        return self.blocks(x)

    @staticmethod
    def pooled(h: Tensor) -> Tensor:
        """(B, F, H, W) -> (B, F): global sum pooling (BigGAN, SNGAN)."""
        return h.sum((2, 3))

    def head(self, h: Tensor) -> Tensor:
        return self.linear(self.pooled(h)).view(-1, 1, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
