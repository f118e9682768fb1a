"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric"), through the ``lpips`` package, version 0.1 with the AlexNet backbone (the variant
papers report), with weights from a file the user gives (``translate.metrics.weights.LPIPS``):
the package's own weights need torchvision to download the backbone.

AlexNet's five stride-2 stages need a side of 31 px at least: images whose shorter side is
below ``MIN_SIDE`` (32) are upsampled bilinearly to it first (a tiny generator's 16 px image),
so that LPIPS is defined at every size; larger images are measured as they are."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from translate.errors import ConfigError
from translate.metrics.weights import LPIPS, load_state_dict

#: The shorter side below which images are upsampled before AlexNet (which needs 31 px).
MIN_SIDE = 32


def at_least_min_side(x: torch.Tensor) -> torch.Tensor:
    """``x`` (B, C, H, W), bilinearly upsampled so that its shorter side is ``MIN_SIDE`` when
    it is smaller (the aspect ratio kept), else unchanged."""
    h, w = x.shape[-2:]
    if min(h, w) >= MIN_SIDE:
        return x
    scale = MIN_SIDE / min(h, w)
    size = (max(MIN_SIDE, round(h * scale)), max(MIN_SIDE, round(w * scale)))
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class LPIPSMetric:
    """LPIPS distance of two RGB images (0: identical; larger: more different)."""

    def __init__(self, weights: Path, *, device: str = "cpu"):
        import lpips

        state = load_state_dict(weights, LPIPS)
        with warnings.catch_warnings():  # torchvision's "pretrained is deprecated"
            warnings.simplefilter("ignore")
            net = lpips.LPIPS(net="alex", pretrained=False, pnet_rand=True, verbose=False)
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            names = ", ".join([*missing, *unexpected][:3])
            raise ConfigError(f"{weights}: not an LPIPS (AlexNet) state dict ({names} ...)")
        self.net = net.to(device).eval().requires_grad_(False)
        self.device = device

    def distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """LPIPS of two batches (B, 3, H, W) in [-1, 1], differentiable: (B, 1, 1, 1)."""
        return self.net(at_least_min_side(x), at_least_min_side(y))

    @torch.inference_mode()
    def __call__(self, a: Image.Image, b: Image.Image) -> float:
        x, y = (
            torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32))
            .permute(2, 0, 1)[None]
            .to(self.device)
            / 127.5
            - 1.0
            for im in (a, b)
        )
        if x.shape != y.shape:
            raise ValueError(f"LPIPS: sizes differ, {a.size} vs {b.size}")
        return float(self.distance(x, y).flatten()[0])
