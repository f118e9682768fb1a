"""An endless, resumable sample order.

The order is a pure function of (seed, position): epoch ``e`` is a permutation drawn from
``(seed, e)``. Resuming at ``position`` = samples consumed so far reproduces the exact stream,
independent of DataLoader prefetching. Each index comes with its own augmentation seed.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


class ResumableSampler(Sampler[tuple[int, int]]):
    """Yields ``(index, sample_seed)`` forever, starting at global ``position``."""

    def __init__(self, length: int, *, seed: int, position: int = 0, shuffle: bool = True):
        if length < 1:
            raise ValueError("cannot sample from an empty dataset")
        self.length = length
        self.seed = seed
        self.position = position
        self.shuffle = shuffle

    def order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.length)
        return np.random.default_rng([self.seed, epoch]).permutation(self.length)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position = self.position
        epoch, offset = divmod(position, self.length)
        while True:
            order = self.order(epoch)
            for i in range(offset, self.length):
                # a distinct 31-bit seed per (run seed, global position)
                sample_seed = int(
                    np.random.SeedSequence([self.seed, position]).generate_state(1)[0]
                )
                yield int(order[i]), sample_seed & 0x7FFFFFFF
                position += 1
            epoch, offset = epoch + 1, 0
