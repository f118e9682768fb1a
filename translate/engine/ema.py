"""Exponential moving average of the generators' weights.

Karras et al. 2018 (ProGAN, Sec. A.1) and Yazıcı et al. 2019, "The Unusual Effectiveness of
Averaging in GAN Training": an average of G's recent weights gives better samples than G's last
iterate, at no training cost. After every step that updated the generators, each averaged
parameter moves towards the live one, ``ema = decay * ema + (1 - decay) * param``; buffers (batch
norm statistics, spectral-norm vectors) are copied. The copies live in the engine, are saved as
``ema.<model>.<param>`` tensors in ``model.safetensors`` and restored on resume.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["ModelEMA"]


class ModelEMA:
    """Averaged copies of ``models`` (taken at construction) with decay ``decay``."""

    def __init__(self, models: Mapping[str, nn.Module], decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.models: dict[str, nn.Module] = {}
        for name, model in models.items():
            average = copy.deepcopy(model)
            average.requires_grad_(False)
            self.models[name] = average

    @torch.no_grad()
    def update(self, models: Mapping[str, nn.Module]) -> None:
        """Move every average one step towards the live ``models`` of the same names."""
        for name, average in self.models.items():
            live = models[name]
            averaged = [p for _, p in sorted(average.named_parameters())]
            current = [p.detach() for _, p in sorted(live.named_parameters())]
            if averaged:
                torch._foreach_lerp_(averaged, current, 1.0 - self.decay)
            for (_, a), (_, b) in zip(
                sorted(average.named_buffers()), sorted(live.named_buffers()), strict=True
            ):
                a.copy_(b)
