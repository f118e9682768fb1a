"""A bounded inference pool: a fixed number of worker threads and a bounded queue.

A request that finds the queue full is refused at once (``QueueFull``; the service answers 503
with Retry-After) instead of piling up memory. A worker takes the oldest job plus every queued
job with the same batch key (same model, options and image size), up to ``max_batch``, and runs
them as one batch (micro-batching). ``shutdown`` stops new jobs and returns after the queued and
running ones have finished (or, given a timeout, cancels what is left and returns within it).

Requests that give up (``give_up``: their deadline passed, or the client left): a queued job
leaves the queue at once (it no longer counts against ``queue_size``); a running batch whose
every job has given up is cancelled (``translate.serve.cancel``: it stops at its next cancel
point, a PyTorch module's forward). A cancelled batch still running ``cancel_grace`` seconds
later (a computation with no cancel point) leaves its worker *stuck*: ``stats()["stuck"]``
counts it (``/readyz`` answers 503), and another worker thread takes its place (at most
``workers`` such replacements at once), so the queue keeps moving while the stuck thread runs
its batch to the end and then exits. Python cannot stop that thread; a stuck batch keeps its
memory reservation until it ends, because it still holds that memory.

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
from typing import Any, Literal

from translate.serve.cancel import Cancelled, cancelling, check

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
    batch: _Batch | None = None  # set when a worker takes it
    gave_up: bool = False  # its request no longer waits for it


@dataclass(eq=False)
class _Batch:
    """Jobs running together in one worker."""

    jobs: list[_Job]
    cancel: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.monotonic)
    cancelled_at: float | None = None  # when its last waiter gave up
    stuck: bool = False  # still running cancel_grace after it was cancelled
    replaced: bool = False  # another worker was started in its worker's place


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
        cancel_grace: float = 5.0,
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
        self.cancel_grace = cancel_grace
        self.name = name
        self._by_future: dict[concurrent.futures.Future, _Job] = {}
        self._running_batches: list[_Batch] = []
        self._gave_up = 0  # requests that gave up (queued or running)
        self._cancelled = 0  # batches cancelled
        self._stuck = 0  # batches running past their cancel_grace
        self._replacements = 0  # live workers started in a stuck one's place
        self._spawned = 0
        self._threads: list[threading.Thread] = []
        with self._cond:
            for _ in range(workers):
                self._spawn_locked()
        threading.Thread(target=self._watch, name=f"{name}-watch", daemon=True).start()

    def _spawn_locked(self) -> None:
        thread = threading.Thread(
            target=self._work, name=f"{self.name}-{self._spawned}", daemon=True
        )
        self._spawned += 1
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
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
            self._by_future[job.future] = job
            self._cond.notify_all()
        return job.future

    def give_up(self, future: concurrent.futures.Future) -> Literal["queued", "running", "done"]:
        """The request waiting for ``future`` has gone (deadline, client): a queued job leaves
        the queue; a running batch is cancelled once all its jobs' requests have given up.
        Returns where the job was."""
        with self._cond:
            job = self._by_future.get(future)
            if job is None:
                return "done"
            self._gave_up += 1
            if job.batch is None:
                self._pending.remove(job)
                del self._by_future[future]
                future.cancel()
                self._cond.notify_all()  # the budget may let the next oldest job run
                return "queued"
            job.gave_up = True
            batch = job.batch
            if all(j.gave_up for j in batch.jobs) and not batch.cancel.is_set():
                batch.cancel.set()
                batch.cancelled_at = time.monotonic()
                self._cancelled += 1
                log.info("batch %r cancelled: every request of it gave up", job.key)
                self._cond.notify_all()  # the watcher times its grace
            return "running"

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

    def _take(self) -> _Batch | None:
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
            taken = _Batch(batch)
            for job in batch:
                job.batch = taken
            if batch:
                self._running_batches.append(taken)
            return taken

    def _work(self) -> None:
        while (taken := self._take()) is not None:
            batch = taken.jobs
            if not batch:
                continue
            if self.on_batch is not None:
                self.on_batch(len(batch))
            started = time.perf_counter()
            try:
                with cancelling(taken.cancel):
                    check()
                    results = list(self.run_batch(batch[0].key, [job.item for job in batch]))
                if len(results) != len(batch):
                    raise RuntimeError(f"batch of {len(batch)} gave {len(results)} results")
            except Cancelled as exc:
                log.info(
                    "batch %r stopped %.1f s after it was cancelled",
                    batch[0].key,
                    time.monotonic() - (taken.cancelled_at or time.monotonic()),
                )
                results = [exc] * len(batch)
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
                self._running_batches.remove(taken)
                for job in batch:
                    self._by_future.pop(job.future, None)
                if taken.stuck:
                    self._stuck -= 1
                    log.warning("a stuck batch %r ended after %.1f s", batch[0].key, run_s)
                self._cond.notify_all()
            for job, result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    queued = started - job.queued_at
                    job.future.set_result(JobResult(result, queued, run_s, len(batch)))
            if taken.replaced:  # another worker took this one's place meanwhile
                with self._cond:
                    self._replacements -= 1
                return

    def _watch(self) -> None:
        """Marks a cancelled batch still running ``cancel_grace`` seconds later as stuck, and
        starts a worker in its worker's place (at most ``workers`` replacements alive)."""
        with self._cond:
            while not (self._closed and not self._running_batches and not self._pending):
                now = time.monotonic()
                wake: float | None = None
                for b in self._running_batches:
                    if b.cancelled_at is None or b.stuck:
                        continue
                    due = b.cancelled_at + self.cancel_grace
                    if due > now:
                        wake = due if wake is None else min(wake, due)
                        continue
                    b.stuck = True
                    self._stuck += 1
                    replace = not self._closed and self._replacements < self.workers
                    log.warning(
                        "inference worker stuck: batch %r still runs %.1f s after its "
                        "requests gave up (no cancel point reached)%s",
                        b.jobs[0].key,
                        now - b.cancelled_at,
                        "; starting another worker" if replace else "",
                    )
                    if replace:
                        b.replaced = True
                        self._replacements += 1
                        self._spawn_locked()
                self._cond.wait(None if wake is None else max(0.01, wake - now))

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
                "gave_up": self._gave_up,
                "cancelled": self._cancelled,
                "stuck": self._stuck,
                "memory_budget": self.memory_budget,
                "memory_reserved": self._reserved,
                "memory_reserved_peak": self._reserved_peak,
                "pixels_in_flight": self._pixels,
            }

    @property
    def closed(self) -> bool:
        return self._closed

    def stuck_for(self) -> float:
        """Seconds the longest-stuck batch has run since it was cancelled (0: none stuck)."""
        now = time.monotonic()
        with self._cond:
            return max(
                (now - (b.cancelled_at or now) for b in self._running_batches if b.stuck),
                default=0.0,
            )

    def shutdown(self, *, timeout: float | None = None) -> bool:
        """Take no new jobs; wait (up to ``timeout`` seconds) until every queued and running
        job has finished. Past ``timeout``, queued jobs fail with ``PoolClosed``, running
        batches are cancelled and get ``cancel_grace`` more seconds; a batch that runs on is
        left to its (daemon) thread. Returns whether all finished."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._join(timeout):
            return True
        with self._cond:
            for job in self._pending:
                self._by_future.pop(job.future, None)
                if job.future.set_running_or_notify_cancel():
                    job.future.set_exception(PoolClosed("the server is shutting down"))
            self._pending.clear()
            for batch in self._running_batches:
                batch.cancel.set()
            self._cond.notify_all()
        if self._join(self.cancel_grace):
            return True
        log.warning("shutdown: leaving %d stuck inference batch(es) running", self._running)
        return False

    def _join(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            threads = list(self._threads)
        for thread in threads:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(left)
        with self._cond:
            return not any(thread.is_alive() for thread in self._threads)
