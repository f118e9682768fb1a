"""Learning-rate schedule, computed from the step alone (nothing to checkpoint).

pix2pix / CycleGAN (Isola 2017, Zhu 2017): constant for the first part of training, then linear
decay to zero; ``decay_start`` is that first part as a fraction of ``max_steps``.
"""

from __future__ import annotations


def lr_factor(step: int, *, max_steps: int, decay_start: float) -> float:
    """Multiplier of the base LR at ``step`` (0-based): 1 until the decay, then linear to 0."""
    start = int(max_steps * decay_start)
    if step < start or start >= max_steps:
        return 1.0
    return max(0.0, 1.0 - (step - start) / (max_steps - start))
