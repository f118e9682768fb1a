"""Exponential moving average of the generators' weights.

Karras et al. 2018 (ProGAN, Sec. A.1) and Yazıcı et al. 2019, "The Unusual Effectiveness of
Averaging in GAN Training": an average of G's recent weights gives better samples than G's last
iterate, at no training cost. After every step that updated the generators, each averaged
parameter moves towards the live one, ``ema = decay * ema + (1 - decay) * param``; buffers (batch
norm statistics, spectral-norm vectors) are copied. The copies live in the engine, are saved as
``ema.<model>.<param>`` tensors in ``model.safetensors`` and restored on resume.

StyleGAN2 (Karras et al. 2020, official code; ``--ema-kimg``) states the decay as a half-life in
images instead: ``decay = 0.5 ** (batch / half_life)``, whatever the batch size, with the
half-life ramped up over the start of training (``half_life_decay``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["ModelEMA", "half_life_decay"]


class ModelEMA:
    """Averaged copies of ``models`` (taken at construction) with decay ``decay``."""

    def __init__(self, models: Mapping[str, nn.Module], decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.models: dict[str, nn.Module] = {}
        for name, model in models.items():
            average = copy.deepcopy(model)
            average.requires_grad_(False)
            self.models[name] = average

    @torch.no_grad()
    def update(self, models: Mapping[str, nn.Module], decay: float | None = None) -> None:
        """Move every average one step towards the live ``models`` of the same names (with
        ``decay`` for this step when given, e.g. from ``half_life_decay``)."""
        decay = self.decay if decay is None else float(decay)
        for name, average in self.models.items():
            live = models[name]
            averaged = [p for _, p in sorted(average.named_parameters())]
            current = [p.detach() for _, p in sorted(live.named_parameters())]
            if averaged:
                torch._foreach_lerp_(averaged, current, 1.0 - decay)
            for (_, a), (_, b) in zip(
                sorted(average.named_buffers()), sorted(live.named_buffers()), strict=True
            ):
                a.copy_(b)


def half_life_decay(batch: int, kimg: float, images_seen: int, rampup: float = 0.0) -> float:
    """The EMA decay of one step of ``batch`` images for a half-life of ``kimg`` thousand
    images: ``0.5 ** (batch / half_life)``; with ``rampup`` the half-life is at most
    ``rampup * images_seen`` (0 at the start: the average is a copy)."""
    half_life = kimg * 1000.0
    if rampup > 0:
        half_life = min(half_life, images_seen * rampup)
    return 0.5 ** (batch / max(half_life, 1e-8))
