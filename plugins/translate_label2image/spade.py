"""SPADE generator: spatially-adaptive (de)normalisation, written from the paper.

Park, Liu, Wang, Zhu, "Semantic Image Synthesis with Spatially-Adaptive Normalization", CVPR
2019 (Sec. 3, Fig. 2 and the appendix's Fig. 10-11). Written from the paper's text and figures,
not from the NVlabs code (whose licence is non-commercial).

SPADE (Eq. 1): a parameter-free normalisation of the activation ``h`` (instance or batch
statistics, no affine transform) followed by a per-pixel scale and shift predicted from the
segmentation map ``m`` at ``h``'s resolution::

    SPADE(h, m) = norm(h) * (1 + gamma(m)) + beta(m)
    gamma, beta = Conv3x3(ReLU(Conv3x3(m)))   (a shared hidden layer, then one conv each)

(``1 + gamma`` so that a freshly initialised block starts near plain normalisation.) The
residual block (Fig. 10) is ``SPADE, LeakyReLU, Conv3x3`` twice, with a learned shortcut
``SPADE, Conv1x1`` when the channel count changes. The generator (Fig. 11) has no encoder:
its input is the segmentation map itself, down-sampled to ``1 / 2**n_up`` and projected by a
3x3 convolution; then ``n_up`` times "SPADE block, 2x nearest up-sampling", a final SPADE block,
LeakyReLU, Conv3x3 to RGB and tanh.

Our choice where the paper leaves room: the segmentation map is brought to each block's
resolution by *average pooling* rather than nearest-neighbour resizing, so a coarse block sees
the share of each class under it (a one-pixel pole does not vanish at 1/32 resolution); the
input's height and width are multiples of ``2**n_up`` (the runner pads), which makes every
pooling exact and the module exports to ONNX with dynamic sizes.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

#: widest layer, in multiples of ``base_channels`` (the paper: 16 * 64 = 1024)
MAX_WIDTH_FACTOR = 16


def _param_free_norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=False)
    raise ValueError(f"unknown SPADE norm {kind!r}; expected 'instance' or 'batch'")


class SPADE(nn.Module):
    """Spatially-adaptive normalisation (Park et al. 2019, Eq. 1).

    Args:
        channels: channels of the normalised activation.
        label_channels: channels of the segmentation map (classes, + 1 with instance edges).
        hidden: width of the shared hidden convolution (the paper: 128).
        norm: parameter-free normalisation, ``"instance"`` or ``"batch"``.
    """

    def __init__(self, *, channels: int, label_channels: int, hidden: int, norm: str) -> None:
        super().__init__()
        self.norm = _param_free_norm(norm, channels)
        self.shared = nn.Sequential(
            nn.Conv2d(label_channels, hidden, kernel_size=3, padding=1), nn.ReLU(inplace=True)
        )
        self.gamma = nn.Conv2d(hidden, channels, kernel_size=3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, kernel_size=3, padding=1)

    def forward(self, h: Tensor, seg: Tensor) -> Tensor:
        # h: (B, C, H, W); seg: (B, L, H, W), already at h's resolution
        actv = self.shared(seg)
        return self.norm(h) * (1 + self.gamma(actv)) + self.beta(actv)


class SPADEResBlock(nn.Module):
    """SPADE residual block (Park et al. 2019, Fig. 10)."""

    def __init__(
        self, *, c_in: int, c_out: int, label_channels: int, hidden: int, norm: str
    ) -> None:
        super().__init__()
        mid = min(c_in, c_out)
        kw = {"label_channels": label_channels, "hidden": hidden, "norm": norm}
        self.spade_0 = SPADE(channels=c_in, **kw)
        self.conv_0 = nn.Conv2d(c_in, mid, kernel_size=3, padding=1)
        self.spade_1 = SPADE(channels=mid, **kw)
        self.conv_1 = nn.Conv2d(mid, c_out, kernel_size=3, padding=1)
        self.learned_shortcut = c_in != c_out
        if self.learned_shortcut:
            self.spade_s = SPADE(channels=c_in, **kw)
            self.conv_s = nn.Conv2d(c_in, c_out, kernel_size=1, bias=False)

    def forward(self, x: Tensor, seg: Tensor) -> Tensor:
        # x: (B, c_in, H, W); seg: (B, L, H, W) -> (B, c_out, H, W)
        shortcut = self.conv_s(self.spade_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.spade_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.spade_1(dx, seg), 0.2))
        return shortcut + dx


class SPADEGenerator(nn.Module):
    """SPADE generator (Park et al. 2019, Fig. 11), segmentation map in, image out.

    Width of stage ``i`` (0 = coarsest): ``base_channels * min(2 ** (n_up - i), 16)``; the paper's
    256x256 setting is ``n_up = 5``, ``base_channels = 64``, ``hidden = 128``.

    Args:
        label_channels: input channels (one-hot classes, + 1 with instance edges).
        out_channels: image channels.
        base_channels: width of the last stage (``ngf``).
        n_up: number of 2x up-samplings; inputs are multiples of ``2 ** n_up``.
        hidden: SPADE hidden width.
        norm: SPADE's parameter-free normalisation (``"instance"`` or ``"batch"``).

    Attributes:
        multiple_of: ``2 ** n_up``.
    """

    def __init__(
        self,
        *,
        label_channels: int,
        out_channels: int = 3,
        base_channels: int = 64,
        n_up: int = 5,
        hidden: int = 128,
        norm: str = "instance",
    ) -> None:
        super().__init__()
        for name, value in (
            ("label_channels", label_channels),
            ("base_channels", base_channels),
            ("n_up", n_up),
            ("hidden", hidden),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        self.n_up = n_up
        self.multiple_of = 2**n_up
        widths = [base_channels * min(2 ** (n_up - i), MAX_WIDTH_FACTOR) for i in range(n_up + 1)]
        kw = {"label_channels": label_channels, "hidden": hidden, "norm": norm}
        self.head = nn.Conv2d(label_channels, widths[0], kernel_size=3, padding=1)
        self.blocks = nn.ModuleList(
            [SPADEResBlock(c_in=widths[0], c_out=widths[0], **kw)]
            + [SPADEResBlock(c_in=widths[i - 1], c_out=widths[i], **kw) for i in range(1, n_up + 1)]
        )
        self.to_rgb = nn.Conv2d(widths[-1], out_channels, kernel_size=3, padding=1)

    def spectral_norm_layers(self) -> list[nn.Module]:
        """The layers SPADE spectrally normalises (``--spectral-norm both``): the residual
        blocks' convolutions (Fig. 10), not the SPADE modulation convolutions (shared, gamma,
        beta), the head or ``to_rgb`` (as the authors' code: spectral norm is part of the
        residual block's norm setting)."""
        return [
            conv
            for block in self.blocks
            for conv in (block.conv_0, block.conv_1, getattr(block, "conv_s", None))
            if conv is not None
        ]

    def forward(self, seg: Tensor) -> Tensor:
        # seg: (B, L, H, W), H and W multiples of 2 ** n_up -> (B, out, H, W) in [-1, 1]
        scale = self.multiple_of
        x = self.head(F.avg_pool2d(seg, scale))  # (B, C_0, H / 2**n, W / 2**n)
        for i, block in enumerate(self.blocks):
            if i > 0:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
                scale //= 2
            s = F.avg_pool2d(seg, scale) if scale > 1 else seg  # class shares at x's size
            x = block(x, s)
        return self.to_rgb(F.leaky_relu(x, 0.2)).tanh()
