"""A bounded inference pool: a fixed number of worker threads and a bounded queue.

A request that finds the queue full is refused at once (``QueueFull``; the service answers 503
with Retry-After) instead of piling up memory. A worker takes the oldest job plus every queued
job with the same batch key (same model, options and image size), up to ``max_batch``, and runs
them as one batch (micro-batching). ``shutdown`` stops new jobs and returns after the queued and
running ones have finished.

Memory budget: each job states its ``cost`` (bytes its batch needs while it runs: decoded
input, output, activations). Running jobs together never exceed ``memory_budget``: the oldest
job waits in the queue until enough running work has finished (first come, first served), and a
batch only takes as many same-key jobs as fit. A job that alone exceeds the budget is refused at
``submit`` (``OverBudget``).

No torch, no asyncio here: jobs are plain callables over items, results come back through
``concurrent.futures.Future`` (``asyncio.wrap_future`` awaits them).
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import math
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: Runs one batch: the key and the items -> one result (or an exception) per item, in order.
BatchFn = Callable[[Hashable, Sequence[Any]], Sequence[Any]]


class QueueFull(Exception):
    """The queue holds ``queue_size`` jobs; ``retry_after`` is a suggested wait in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"inference queue is full; retry after {retry_after} s")
        self.retry_after = retry_after


class PoolClosed(Exception):
    """The pool is shutting down and takes no new jobs."""


class OverBudget(Exception):
    """One job needs more memory than the whole budget: it could never run."""

    def __init__(self, cost: int, budget: int) -> None:
        mib = 1024 * 1024
        super().__init__(
            f"this request needs about {cost / mib:.0f} MiB to process, more than the server's "
            f"memory budget of {budget / mib:.0f} MiB"
        )
        self.cost = cost
        self.budget = budget


@dataclass
class _Job:
    key: Hashable
    item: Any
    cost: int = 0  # bytes reserved from the memory budget while it runs
    pixels: int = 0  # input pixels, for the in-flight figure
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    queued_at: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class JobResult:
    """What a job's future resolves to: the batch function's result and timings."""

    value: Any
    queued_s: float  # waiting for a worker
    run_s: float  # the batch this job ran in
    batch_size: int


class InferencePool:
    """``workers`` threads running ``run_batch`` over batches of queued jobs."""

    def __init__(
        self,
        run_batch: BatchFn,
        *,
        workers: int = 1,
        queue_size: int = 16,
        max_batch: int = 4,
        min_retry_after: int = 1,
        memory_budget: int | None = None,
        on_batch: Callable[[int], None] | None = None,
        name: str = "translate-infer",
    ) -> None:
        if workers < 1 or queue_size < 1 or max_batch < 1:
            raise ValueError("workers, queue_size and max_batch must be at least 1")
        self.memory_budget = memory_budget  # None: unbounded
        self.on_batch = on_batch  # called with each batch's size (metrics)
        self._reserved = 0  # bytes reserved by running batches
        self._reserved_peak = 0
        self._pixels = 0  # input pixels in running batches
        self.run_batch = run_batch
        self.workers = workers
        self.queue_size = queue_size
        self.max_batch = max_batch
        self.min_retry_after = min_retry_after
        self._pending: collections.deque[_Job] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._running = 0
        self._completed = 0
        self._rejected = 0
        self._batches = 0
        self._mean_batch_s = 0.0  # running mean of batch times, for Retry-After
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    # -------------------------------------------------------------- submitting
    def submit(
        self, key: Hashable, item: Any, *, cost: int = 0, pixels: int = 0
    ) -> concurrent.futures.Future:
        """Queue one item that needs ``cost`` bytes while it runs; its future resolves to a
        ``JobResult`` or raises the item's error. Raises ``OverBudget`` when ``cost`` exceeds
        the whole memory budget, ``QueueFull`` when ``queue_size`` jobs are waiting,
        ``PoolClosed`` after ``shutdown``."""
        if self.memory_budget is not None and cost > self.memory_budget:
            raise OverBudget(cost, self.memory_budget)
        job = _Job(key, item, cost, pixels)
        with self._cond:
            if self._closed:
                raise PoolClosed("the server is shutting down")
            if len(self._pending) >= self.queue_size:
                self._rejected += 1
                raise QueueFull(self._retry_after_locked())
            self._pending.append(job)
            self._cond.notify()
        return job.future

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained enough (at least ``min_retry_after``)."""
        with self._cond:
            return self._retry_after_locked()

    def _retry_after_locked(self) -> int:
        waves = len(self._pending) / (self.workers * self.max_batch)
        return max(self.min_retry_after, math.ceil(waves * self._mean_batch_s))

    # -------------------------------------------------------------- working
    def _fits(self, cost: int) -> bool:
        budget = self.memory_budget
        return budget is None or self._reserved + cost <= budget

    def _take(self) -> list[_Job] | None:
        """The next batch: the oldest job and queued jobs with its key, as many as the memory
        budget allows; None when closed and drained."""
        with self._cond:
            while True:
                while self._pending and self._pending[0].future.cancelled():
                    self._pending.popleft()  # its waiter has gone: never run it
                if self._pending and self._fits(self._pending[0].cost):
                    break
                if not self._pending and self._closed:
                    return None
                self._cond.wait()  # no job, or the oldest waits for running work to finish
            batch: list[_Job] = []
            keep: collections.deque[_Job] = collections.deque()
            cost = 0
            while self._pending:
                job = self._pending.popleft()
                fits = not batch or (
                    job.key == batch[0].key
                    and len(batch) < self.max_batch
                    and self._fits(cost + job.cost)
                )
                if not fits:
                    keep.append(job)
                # a job whose waiter has gone (cancelled future) is dropped, not run
                elif job.future.set_running_or_notify_cancel():
                    batch.append(job)
                    cost += job.cost
            self._pending = keep
            self._running += len(batch)
            self._reserved += cost
            self._reserved_peak = max(self._reserved_peak, self._reserved)
            self._pixels += sum(job.pixels for job in batch)
            return batch

    def _work(self) -> None:
        while (batch := self._take()) is not None:
            if not batch:
                continue
            if self.on_batch is not None:
                self.on_batch(len(batch))
            started = time.perf_counter()
            try:
                results = list(self.run_batch(batch[0].key, [job.item for job in batch]))
                if len(results) != len(batch):
                    raise RuntimeError(f"batch of {len(batch)} gave {len(results)} results")
            except BaseException as exc:  # one bad batch must not kill the worker
                # the waiters get the error (and whoever awaits them reports it)
                log.debug("batch %r failed: %r", batch[0].key, exc)
                results = [exc] * len(batch)
            run_s = time.perf_counter() - started
            # the figures first: a waiter woken by its result sees them settled
            with self._cond:
                self._running -= len(batch)
                self._reserved -= sum(job.cost for job in batch)
                self._pixels -= sum(job.pixels for job in batch)
                self._completed += len(batch)
                self._batches += 1
                self._mean_batch_s += (run_s - self._mean_batch_s) / min(self._batches, 20)
                self._cond.notify_all()
            for job, result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    queued = started - job.queued_at
                    job.future.set_result(JobResult(result, queued, run_s, len(batch)))

    # -------------------------------------------------------------- state
    def stats(self) -> dict[str, Any]:
        with self._cond:
            return {
                "workers": self.workers,
                "queue_size": self.queue_size,
                "max_batch": self.max_batch,
                "queued": len(self._pending),
                "running": self._running,
                "completed": self._completed,
                "rejected": self._rejected,
                "closed": self._closed,
                "memory_budget": self.memory_budget,
                "memory_reserved": self._reserved,
                "memory_reserved_peak": self._reserved_peak,
                "pixels_in_flight": self._pixels,
            }

    @property
    def closed(self) -> bool:
        return self._closed

    def shutdown(self, *, timeout: float | None = None) -> bool:
        """Take no new jobs; wait (up to ``timeout`` seconds) until every queued and running
        job has finished. Returns whether all finished."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(left)
        return not any(thread.is_alive() for thread in self._threads)
