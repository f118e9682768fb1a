"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric"), through the ``lpips`` package, version 0.1 with the AlexNet backbone (the variant
papers report), with weights from a file the user gives (``translate.metrics.weights.LPIPS``):
the package's own weights need torchvision to download the backbone."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from translate.errors import ConfigError
from translate.metrics.weights import LPIPS, load_state_dict


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
        return float(self.net(x, y).flatten()[0])
