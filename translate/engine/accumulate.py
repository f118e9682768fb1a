"""Gradient accumulation (``--grad-accum K``) as K virtual ranks per process.

A GAN step alternates updates: D steps on the global batch, then G's loss sees the *updated* D.
Accumulating G's and D's gradients over K micro-batches one after the other would give G a D
that has not yet seen the other micro-batches. So the K micro-batches of a step run the
plugin's ``train_step`` the way K processes of a distributed run would: each in its own thread
with its own random stream, image pools and rows of the global batch (a *virtual rank*), taking
turns in a fixed order (0, 1, ..., K-1: one thread runs at a time, so the sums are
deterministic). At the end of each optimiser group's block (``TrainContext.accumulate``) a
virtual rank hands the turn on; the last one divides the summed gradients by K (what DDP's
average does), steps the optimiser and hands the turn back to the first. Every group therefore
steps once per step on the gradient of the mean over ``world x K x batch`` samples, and 2
processes with batch B train like 1 process with ``--grad-accum 2`` and batch B (the same
random streams, pools and GP draws: virtual rank ``rank * K + i`` is what rank ``rank * K + i``
of ``world x K`` processes would be), at the memory of one micro-batch.

Batch-norm running statistics (not used by training-mode forward passes) are updated by every
micro-batch in turn; in a distributed run each rank keeps its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader

from translate.data.pool import ImagePool
from translate.data.sampler import ResumableSampler
from translate.engine.run_state import RANK_SEED, rng_state, set_rng_state

__all__ = ["MicroBatches", "train_batches"]


def train_batches(
    dataset: Any, cfg: Any, dist: Any, seen: int, device: torch.device
) -> Iterator[Any]:
    """Endless batches of this process's rows, starting at ``seen`` samples consumed (over
    every process). With ``cfg.grad_accum`` K > 1: lists of K micro-batches, micro-batch i
    being the rows of virtual rank ``rank * K + i`` of ``world x K``."""
    k = cfg.grad_accum
    loaders = []
    for i in range(k):
        sampler = ResumableSampler(
            len(dataset),
            seed=cfg.seed,
            position=seen,
            rank=dist.rank * k + i,
            world_size=dist.world_size * k,
            batch_size=cfg.batch_size,
        )
        # the loader's own generator: creating its iterator (worker base seed) would otherwise
        # draw from the global RNG just restored, shifting every later draw (dropout,
        # DiffAugment, noise, GP); the order and augmentation come from the sampler's seeds
        generator = torch.Generator().manual_seed(cfg.seed + seen)
        loader = DataLoader(
            dataset,
            batch_size=cfg.batch_size,
            sampler=sampler,
            num_workers=cfg.workers,
            pin_memory=device.type == "cuda",
            persistent_workers=cfg.workers > 0,
            generator=generator,
        )
        loaders.append(iter(loader))
    if k == 1:
        return loaders[0]
    return (list(micro) for micro in zip(*loaders, strict=True))


class _Aborted(BaseException):
    """Another virtual rank failed: this one stops where it waits."""


class MicroBatches:
    """The K virtual ranks of this process and their turn-taking.

    ``states[i]`` is virtual rank i's random state, pools and GP draw counter, swapped into the
    process (the global generator, ``ctx.pools``, ``ctx.rank``, the objective's rank) while
    it has the turn.
    """

    def __init__(self, k: int, *, ctx: Any, rank: int, seed: int, device: torch.device):
        self.k, self.ctx, self.device = k, ctx, device
        self.first_rank = rank * k
        self.states: list[dict[str, Any]] = []
        with torch.random.fork_rng(self._devices()):
            for i in range(k):
                torch.manual_seed(seed + RANK_SEED * (self.first_rank + i))
                self.states.append({"rng": rng_state(self.device), "pools": {}, "draws": 0})
        self.index = 0  # the virtual rank that has the turn (or ran last)
        self._turn = 0
        self._cond = threading.Condition()
        self._failed: BaseException | None = None
        self._load(0)  # between steps the process holds virtual rank 0's state

    # ------------------------------------------------------------------ state swapping
    def _devices(self) -> list[torch.device]:
        return [self.device] if self.device.type == "cuda" else []

    def _flags(self) -> list[bool]:
        """``requires_grad`` of every parameter and ``training`` of every module: a plugin's
        ``ctx.frozen`` and ``.eval()`` belong to the virtual rank that set them, as they would
        to one process."""
        models = self.ctx.models.values()
        return [p.requires_grad for m in models for p in m.parameters()] + [
            sub.training for m in models for sub in m.modules()
        ]

    def _set_flags(self, flags: list[bool]) -> None:
        models = self.ctx.models.values()
        params = [p for m in models for p in m.parameters()]
        modules = [sub for m in models for sub in m.modules()]
        for p, flag in zip(params, flags[: len(params)], strict=True):
            p.requires_grad_(flag)
        for sub, flag in zip(modules, flags[len(params) :], strict=True):
            sub.training = flag

    def _save(self, i: int) -> None:
        state = self.states[i]
        state.update(rng=rng_state(self.device), pools=self.ctx.pools, draws=self.ctx.gan._draws)
        state["flags"] = self._flags()

    def _load(self, i: int) -> None:
        state = self.states[i]
        set_rng_state(state["rng"], self.device)
        if "flags" in state:
            self._set_flags(state["flags"])
        self.ctx.pools, self.ctx.gan._draws = state["pools"], state["draws"]
        self.ctx.rank = self.ctx.gan.rank = self.first_rank + i
        self.index = i

    # ------------------------------------------------------------------ per-rank state
    def rank_states(self) -> list[dict[str, Any]]:
        """Each virtual rank's random state and pools (state dicts), in rank order."""
        self._save(self.index)
        return [
            {"rng": s["rng"], "pools": {k: p.state_dict() for k, p in s["pools"].items()}}
            for s in self.states
        ]

    def load_rank_states(self, states: Sequence[dict[str, Any]]) -> None:
        """Restore virtual rank i from ``states[i]`` (``rank_states``' entries)."""
        for state, mine in zip(states, self.states, strict=True):
            mine["rng"] = state["rng"]
            mine["pools"] = {}
            for key, pool_state in state["pools"].items():
                pool = mine["pools"][key] = ImagePool(int(pool_state["size"]))
                pool.load_state_dict(pool_state)
        self._load(0)

    # ------------------------------------------------------------------ turns
    @property
    def first(self) -> bool:
        return self.index == 0

    @property
    def last(self) -> bool:
        return self.index == self.k - 1

    def _hand_on(self) -> None:
        """Give the turn to the next virtual rank (cyclically) and wait for it to come back."""
        me = self.index
        self._save(me)
        with self._cond:
            self._turn = (me + 1) % self.k
            self._cond.notify_all()
            self._wait(me)

    def _wait(self, me: int) -> None:
        while self._turn != me and self._failed is None:
            self._cond.wait()
        if self._failed is not None:
            raise _Aborted
        self._load(me)

    def arrive(self) -> bool:
        """End of an optimiser group's block: True for the last virtual rank (which steps and
        then calls ``release``); the others hand on and return once the step was taken."""
        if self.last:
            return True
        self._hand_on()
        return False

    def release(self) -> None:
        """After the last virtual rank stepped: the first goes on."""
        self._hand_on()

    def run(self, step: Callable[[Any], dict[str, float]], batches: Sequence[Any]) -> list[Any]:
        """``step(batches[i])`` as virtual rank i, for every i, taking turns; their results."""
        results: list[Any] = [None] * self.k
        self._save(0)  # what was drawn between steps was virtual rank 0's
        flags = self.states[0]["flags"]
        for state in self.states:  # every virtual rank starts the step as the process is
            state["draws"], state["flags"] = 0, flags  # (GP draws count per step)
        self._turn, self._failed = 0, None

        def body(i: int) -> None:
            try:
                with self._cond:
                    self._wait(i)
                results[i] = step(batches[i])
                self._save(i)
                with self._cond:
                    self._turn = (i + 1) % self.k
                    self._cond.notify_all()
            except _Aborted:
                pass
            except BaseException as exc:  # re-raised by run
                with self._cond:
                    self._failed = self._failed or exc
                    self._cond.notify_all()

        threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(self.k)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if self._failed is not None:
            raise self._failed
        self._load(0)  # the process's state between steps: virtual rank 0's
        return results
