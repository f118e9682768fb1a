"""Patch-level discriminators: PatchGAN, PixelGAN and the multi-scale PatchGAN of pix2pixHD.

* ``PatchDiscriminator`` -- the PatchGAN of Isola et al., "Image-to-Image Translation with
  Conditional Adversarial Networks", CVPR 2017 (Section 3.2.2, Appendix 6.1.2). A fully
  convolutional classifier whose every output logit sees one ``N x N`` patch of the input; with
  ``n_layers = 3`` the receptive field is 70x70 ("C64-C128-C256-C512", 2,769,601 parameters for a
  6-channel conditional input with batch norm). A 256x256 input gives a 30x30 logit map.
* ``PixelDiscriminator`` -- the 1x1 "PixelGAN" of the same paper (receptive field 1x1).
* ``MultiscaleDiscriminator`` -- Wang et al., "High-Resolution Image Synthesis and Semantic
  Manipulation with Conditional GANs" (pix2pixHD), CVPR 2018: identical PatchGANs applied to the
  image downsampled by 1, 2, 4, ... (average pooling between scales).

All discriminators return raw logits (no sigmoid); the loss decides how to squash them. With
``spectral_norm=True`` every convolution's weight is divided by its largest singular value
(Miyato et al., "Spectral Normalization for Generative Adversarial Networks", ICLR 2018) through
``torch.nn.utils.parametrizations.spectral_norm``. The norm layers are kept as requested: pass
``norm="none"`` to get the usual SN-only discriminator.

``antialias=True`` is CUT's official PatchGAN (Park et al., ECCV 2020; after Zhang, ICML 2019):
each stride-2 block becomes ``Conv4x4 s1 p1, [norm], LeakyReLU, BlurDownsample``. The blur widens
the receptive field somewhat beyond 70x70; a 256x256 input still gives a 30x30 logit map.

``forward_features`` returns the activation after every block (the last one being the logits),
for the feature-matching loss of pix2pixHD.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from translate.nn.antialias import BlurDownsample
from translate.nn.norms import check_norm_kind, check_positive, norm_layer, uses_bias


def _conv(
    c_in: int,
    c_out: int,
    *,
    kernel_size: int,
    stride: int,
    padding: int,
    bias: bool,
    spectral_norm: bool,
) -> nn.Module:
    """A ``Conv2d``, wrapped in a spectral-norm parametrisation when ``spectral_norm``."""
    conv = nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=bias)
    return _spectral_norm(conv) if spectral_norm else conv


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator (Isola et al. 2017); 70x70 receptive field for ``n_layers = 3``.

    Blocks (``C_n = base_channels * min(2 ** n, 8)``)::

        0            Conv4x4 s2 p1 (in -> C_0), LeakyReLU(0.2)
        1..n-1       Conv4x4 s2 p1 (C_{k-1} -> C_k), norm, LeakyReLU(0.2)
        n            Conv4x4 s1 p1 (C_{n-1} -> C_n), norm, LeakyReLU(0.2)
        n+1          Conv4x4 s1 p1 (C_n -> 1)                                   # logits

    Args:
        in_channels: input channels (for a conditional discriminator: condition + image).
        base_channels: width of the first block (``ndf``).
        n_layers: number of stride-2 blocks (3: 70x70 patches, 1: 16x16, 5: 286x286).
        norm: ``"batch"``, ``"instance"`` or ``"none"``.
        spectral_norm: wrap every convolution in spectral normalisation (Miyato et al. 2018).
        antialias: blur before subsampling (CUT's configuration) instead of strided convolutions.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        base_channels: int = 64,
        n_layers: int = 3,
        norm: str = "batch",
        spectral_norm: bool = False,
        antialias: bool = False,
    ) -> None:
        super().__init__()
        check_positive("in_channels", in_channels)
        check_positive("base_channels", base_channels)
        check_positive("n_layers", n_layers)
        check_norm_kind(norm)
        self.in_channels = in_channels
        self.n_layers = n_layers
        bias = uses_bias(norm)
        sn = bool(spectral_norm)

        def width(n: int) -> int:
            return base_channels * min(2**n, 8)

        def block(c_in: int, c_out: int, *, down: bool, normed: bool) -> nn.Sequential:
            conv = _conv(
                c_in,
                c_out,
                kernel_size=4,
                stride=2 if down and not antialias else 1,
                padding=1,
                bias=bias if normed else True,
                spectral_norm=sn,
            )
            layers = [conv, *([norm_layer(norm, c_out)] if normed else [])]
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            if down and antialias:
                layers.append(BlurDownsample(c_out))
            return nn.Sequential(*layers)

        blocks: list[nn.Module] = [block(in_channels, width(0), down=True, normed=False)]
        for n in range(1, n_layers + 1):
            # the last feature block keeps the resolution
            blocks.append(block(width(n - 1), width(n), down=n < n_layers, normed=True))
        blocks.append(
            _conv(
                width(n_layers), 1, kernel_size=4, stride=1, padding=1, bias=True, spectral_norm=sn
            )
        )
        self.blocks = nn.ModuleList(blocks)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Activations after each of the ``n_layers + 2`` blocks; the last item is the logits."""
        # x: (B, in_channels, H, W)
        features: list[Tensor] = []
        h = x
        for block in self.blocks:
            h = block(h)
            features.append(h)
        return features

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, in_channels, H, W) -> logits (B, 1, h, w); 256x256 -> 30x30 for n_layers = 3
        h = x
        for block in self.blocks:
            h = block(h)
        return h


class PixelDiscriminator(nn.Module):
    """1x1 PixelGAN discriminator (Isola et al. 2017): classifies each pixel independently.

    Blocks: Conv1x1 (in -> C), LeakyReLU(0.2); Conv1x1 (C -> 2C), norm, LeakyReLU(0.2);
    Conv1x1 (2C -> 1) giving logits of the input's spatial size. As in the reference code, the
    last convolution has a bias unless ``norm == "batch"``.

    Args:
        in_channels: input channels.
        base_channels: width of the first block (``ndf``).
        norm: ``"batch"``, ``"instance"`` or ``"none"``.
        spectral_norm: wrap every convolution in spectral normalisation (Miyato et al. 2018).
        antialias: blur before subsampling (CUT's configuration) instead of strided convolutions.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        base_channels: int = 64,
        norm: str = "batch",
        spectral_norm: bool = False,
        antialias: bool = False,
    ) -> None:
        super().__init__()
        check_positive("in_channels", in_channels)
        check_positive("base_channels", base_channels)
        check_norm_kind(norm)
        self.in_channels = in_channels
        bias = uses_bias(norm)
        sn = bool(spectral_norm)
        c = base_channels
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(
                    _conv(
                        in_channels,
                        c,
                        kernel_size=1,
                        stride=1,
                        padding=0,
                        bias=True,
                        spectral_norm=sn,
                    ),
                    nn.LeakyReLU(0.2, inplace=True),
                ),
                nn.Sequential(
                    _conv(
                        c, 2 * c, kernel_size=1, stride=1, padding=0, bias=bias, spectral_norm=sn
                    ),
                    norm_layer(norm, 2 * c),
                    nn.LeakyReLU(0.2, inplace=True),
                ),
                _conv(2 * c, 1, kernel_size=1, stride=1, padding=0, bias=bias, spectral_norm=sn),
            ]
        )

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Activations after each of the 3 blocks; the last item is the logits."""
        # x: (B, in_channels, H, W)
        features: list[Tensor] = []
        h = x
        for block in self.blocks:
            h = block(h)
            features.append(h)
        return features

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, in_channels, H, W) -> logits (B, 1, H, W)
        h = x
        for block in self.blocks:
            h = block(h)
        return h


class MultiscaleDiscriminator(nn.Module):
    """pix2pixHD multi-scale discriminator (Wang et al. 2018).

    ``n_scales`` independent ``PatchDiscriminator`` s; scale ``k`` sees the input average-pooled
    ``k`` times with ``AvgPool2d(3, stride=2, padding=1, count_include_pad=False)``. The coarsest
    scale has the largest effective receptive field (global consistency), the finest one judges
    details.

    Args:
        in_channels: input channels.
        n_scales: number of scales (pix2pixHD uses 3).
        base_channels: ``base_channels`` of every ``PatchDiscriminator``.
        n_layers: ``n_layers`` of every ``PatchDiscriminator``.
        norm: ``"batch"``, ``"instance"`` or ``"none"``.
        spectral_norm: spectral normalisation in every ``PatchDiscriminator``.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        n_scales: int = 3,
        base_channels: int = 64,
        n_layers: int = 3,
        norm: str = "instance",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        check_positive("n_scales", n_scales)
        self.in_channels = in_channels
        self.n_scales = n_scales
        self.discriminators = nn.ModuleList(
            PatchDiscriminator(
                in_channels=in_channels,
                base_channels=base_channels,
                n_layers=n_layers,
                norm=norm,
                spectral_norm=spectral_norm,
            )
            for _ in range(n_scales)
        )
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward_features(self, x: Tensor) -> list[list[Tensor]]:
        """Per scale (finest first), the activations of that scale's ``PatchDiscriminator``."""
        # x: (B, in_channels, H, W); scale k sees (B, in_channels, ~H / 2 ** k, ~W / 2 ** k)
        features: list[list[Tensor]] = []
        h = x
        for k, disc in enumerate(self.discriminators):
            if k > 0:
                h = self.downsample(h)
            features.append(disc.forward_features(h))
        return features

    def forward(self, x: Tensor) -> list[Tensor]:
        # x: (B, in_channels, H, W) -> n_scales logit maps (B, 1, h_k, w_k), finest first
        logits: list[Tensor] = []
        h = x
        for k, disc in enumerate(self.discriminators):
            if k > 0:
                h = self.downsample(h)
            logits.append(disc(h))
        return logits
