"""An endless, resumable sample order, sharded across the processes of a distributed run.

The order is a pure function of (seed, position): epoch ``e`` is a permutation drawn from
``(seed, e)``. ``position`` counts *global* samples (over every process), so resuming at the
samples consumed so far reproduces the exact stream, independent of DataLoader prefetching and
of how many processes share it. Each index comes with its own augmentation seed, a function of
(seed, global position) only.

Sharding: from the start position on, the global stream is cut into global batches of
``batch_size * world_size`` samples; rank ``r`` takes the ``r``-th block of ``batch_size`` of
each. One process with batch ``N * B`` therefore sees, batch for batch, the union of what ``N``
processes with batch ``B`` see, and a run saved with ``N`` processes at global position ``p``
resumes with ``M`` processes at ``p``: every sample of the order is seen exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


class ResumableSampler(Sampler[tuple[int, int]]):
    """Yields this rank's ``(index, sample_seed)`` forever, starting at global ``position``."""

    def __init__(
        self,
        length: int,
        *,
        seed: int,
        position: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        batch_size: int = 1,
    ):
        if length < 1:
            raise ValueError("cannot sample from an empty dataset")
        if not 0 <= rank < world_size or batch_size < 1:
            raise ValueError(f"bad shard: rank {rank} of {world_size}, batch {batch_size}")
        self.length = length
        self.seed = seed
        self.position = position
        self.shuffle = shuffle
        self.rank, self.world_size, self.batch_size = rank, world_size, batch_size

    def order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.length)
        return np.random.default_rng([self.seed, epoch]).permutation(self.length)

    def owns(self, position: int) -> bool:
        """Whether global ``position`` falls in this rank's block of its global batch."""
        block = (position - self.position) // self.batch_size
        return block % self.world_size == self.rank

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position = self.position
        epoch, offset = divmod(position, self.length)
        while True:
            order = self.order(epoch)
            for i in range(offset, self.length):
                if self.owns(position):
                    # a distinct 31-bit seed per (run seed, global position)
                    sample_seed = int(
                        np.random.SeedSequence([self.seed, position]).generate_state(1)[0]
                    )
                    yield int(order[i]), sample_seed & 0x7FFFFFFF
                position += 1
            epoch, offset = epoch + 1, 0
