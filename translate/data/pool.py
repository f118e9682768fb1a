"""History buffer of generated images (Shrivastava et al. 2017, used by CycleGAN).

The discriminator sees a mix of the newest fakes and older ones, which damps oscillation. The
pool draws from its own ``torch.Generator`` and is part of the checkpointed trainer state.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class ImagePool:
    """Stores up to ``size`` images; ``query`` returns a batch mixing new and stored ones."""

    def __init__(self, size: int, *, seed: int = 0):
        if size < 0:
            raise ValueError("pool size must be >= 0")
        self.size = size
        self.images: list[Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: Tensor) -> Tensor:
        """``images``: (B, C, H, W), detached. With probability 1/2 per image (once the pool is
        full) a stored image is returned instead and the new one takes its place."""
        if self.size == 0:
            return images
        images = images.detach()
        out = []
        for image in images:
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.cpu().clone())
                out.append(image)
            elif torch.rand((), generator=self.generator) < 0.5:
                j = int(torch.randint(self.size, (), generator=self.generator))
                out.append(self.images[j].to(image.device, image.dtype))
                self.images[j] = image.cpu().clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict[str, Any]:
        stacked = torch.cat(self.images, 0) if self.images else torch.empty(0)
        return {"size": self.size, "images": stacked, "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.size = int(state["size"])
        stored = state["images"]
        self.images = (
            [stored[i : i + 1].clone() for i in range(stored.shape[0])] if stored.numel() else []
        )
        self.generator.set_state(state["rng"])
