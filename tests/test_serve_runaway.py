"""A runaway job does not take the service down: a request that gives up (deadline, client
gone) leaves the queue at once, a running batch nobody waits for is cancelled at its next
PyTorch layer, a worker stuck in code with no cancel point is reported by /readyz (503) and
replaced, and shutdown finishes within a bound. First on the pool itself, then on a real
``translate serve`` whose generator is made deliberately slow (a launcher that patches it)."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from tests.test_serve_sampling import tiny_dcgan_run  # noqa: E402
from translate.serve.admission import DeadlinePassed, await_result  # noqa: E402
from translate.serve.cancel import torch_cancel_points  # noqa: E402
from translate.serve.pool import InferencePool, QueueFull  # noqa: E402
from translate.serve.process import ServerProcess  # noqa: E402


class _Waiting:
    """What ``await_result`` reads of a request whose client stays (receive blocks)."""

    async def receive(self) -> dict:
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}


def wait_for(condition: Any, timeout: float = 10.0) -> float:
    """Seconds until ``condition()`` held (fails after ``timeout``)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "condition not met in time"
        time.sleep(0.01)
    return time.monotonic() - started


def give_up_after(pool: InferencePool, future: Any, seconds: float) -> None:
    with pytest.raises(DeadlinePassed):
        asyncio.run(await_result(_Waiting(), future, time.perf_counter() + seconds, pool))


# ---------------------------------------------------------------------------- the pool
def test_requests_that_give_up_leave_the_queue() -> None:
    """Queued jobs of requests past their deadline no longer count: the queue takes new work
    (before, they stayed queued behind a stuck worker and every request got an instant 503)."""
    release = threading.Event()
    pool = InferencePool(lambda k, items: [release.wait(30) for _ in items], queue_size=3)
    busy = pool.submit("a", 0)
    wait_for(lambda: pool.stats()["running"] == 1)
    queued = [pool.submit("a", i) for i in (1, 2, 3)]
    with pytest.raises(QueueFull):
        pool.submit("a", 4)
    for future in queued:
        give_up_after(pool, future, 0.01)
    assert pool.stats()["queued"] == 0 and pool.stats()["gave_up"] == 3
    more = [pool.submit("a", i) for i in (5, 6, 7)]  # room again
    release.set()
    assert busy.result(10).value and all(f.result(10).value for f in more)
    assert pool.shutdown(timeout=10)


def test_a_batch_nobody_waits_for_stops_at_its_next_layer() -> None:
    """A slow PyTorch job (many layer calls) is cancelled when its request's deadline passes:
    the worker is free again within a layer, not when the job would have ended."""
    layer = torch.nn.Linear(4, 4)
    calls: list[int] = []

    def run(key: Any, items: Any) -> list[Any]:
        x = torch.zeros(1, 4)
        for i in range(100_000):  # about 100 s of work at 1 ms a layer
            x = layer(x)
            calls.append(i)
            time.sleep(0.001)
        return list(items)

    with torch_cancel_points():
        pool = InferencePool(run, cancel_grace=5.0)
        slow = pool.submit("a", 0)
        wait_for(lambda: len(calls) > 0)
        give_up_after(pool, slow, 0.2)
        stopped = wait_for(lambda: pool.stats()["running"] == 0, timeout=5)
        assert stopped < 1.0 and len(calls) < 5000, (stopped, len(calls))
        stats = pool.stats()
        assert stats["cancelled"] == 1 and stats["stuck"] == 0
        calls.clear()
        layer.weight.requires_grad_(False)
        quick = pool.submit("b", 1)  # the same worker takes the next job at once
        give_up_after(pool, quick, 0.2)
        assert pool.shutdown(timeout=5)


def test_a_worker_stuck_without_cancel_points_is_reported_and_replaced() -> None:
    """A job with no cancel point (a Python loop, an ONNX session) runs on: after cancel_grace
    its worker counts as stuck, another worker serves the queue, and when the stuck job ends
    the pool is back to one worker and not stuck."""
    release = threading.Event()

    def run(key: Any, items: Any) -> list[Any]:
        if key == "stuck":
            release.wait(60)  # no cancel point
        return list(items)

    pool = InferencePool(run, workers=1, cancel_grace=0.3)
    stuck = pool.submit("stuck", 0)
    wait_for(lambda: pool.stats()["running"] == 1)
    waiting = pool.submit("ok", 1)  # queued behind the stuck worker
    give_up_after(pool, stuck, 0.1)
    assert wait_for(lambda: pool.stats()["stuck"] == 1, timeout=5) < 2.0
    assert waiting.result(5).value == 1  # served by the replacement
    assert pool.submit("ok", 2).result(5).value == 2
    assert pool.stuck_for() > 0
    release.set()
    wait_for(lambda: pool.stats()["stuck"] == 0 and pool.stats()["running"] == 0)
    wait_for(lambda: sum(t.is_alive() for t in pool._threads) == 1)
    assert pool.submit("ok", 3).result(5).value == 3
    assert pool.shutdown(timeout=5)


def test_shutdown_returns_within_its_bound_with_a_stuck_worker() -> None:
    release = threading.Event()
    pool = InferencePool(lambda k, items: [release.wait(60) for _ in items], cancel_grace=0.3)
    pool.submit("a", 0)
    wait_for(lambda: pool.stats()["running"] == 1)
    queued = pool.submit("b", 1)
    started = time.monotonic()
    assert pool.shutdown(timeout=0.3) is False
    assert time.monotonic() - started < 2.0
    with pytest.raises(Exception, match="shutting down"):
        queued.result(1)
    release.set()


# ---------------------------------------------------------------------------- a real server
#: Patches the generator: n=3 runs 10^6 forwards (slow, but every layer is a cancel point);
#: truncation=1e-30 runs the old resampling loop (about 1e30 rounds, no cancel point).
LAUNCHER = """
import torch
import translate.inference.sampling as sampling

generate = sampling.Sampler.generate


def slow_generate(self, z, *conditions, **options):
    if len(z) == 3:
        for _ in range(10**6):
            self.backend(z, *conditions)
    return generate(self, z, *conditions, **options)


def resampling_loop(shape, truncation, generator):
    z = torch.randn(shape, generator=generator)
    while truncation is not None:
        outside = z.abs() > truncation
        if not outside.any():
            break
        z[outside] = torch.randn(int(outside.sum()), generator=generator)
    return z


sampling.Sampler.generate = slow_generate
sampling.truncated_normal = resampling_loop
from translate.cli.main import main

main()
"""


@pytest.mark.slow
def test_a_runaway_generator_does_not_take_the_server_down(tmp_path: Path) -> None:
    script = tmp_path / "slow_serve.py"
    script.write_text(LAUNCHER)
    args = ["-c", f"gen={tiny_dcgan_run(tmp_path)}", "--workers", "1", "--threads", "1"]
    args += ["--request-timeout", "2", "--cancel-grace", "1", "--no-access-log"]
    server = ServerProcess(args, launcher=[sys.executable, str(script)]).start()
    url = f"{server.url}/v1/models/gen/sample"
    try:
        with httpx.Client(timeout=30) as c:
            # a slow PyTorch job: 503 at the deadline, and the worker is free again at once
            started = time.monotonic()
            assert c.get(url, params={"n": 3}).status_code == 503
            assert time.monotonic() - started < 4
            wait_for(lambda: c.get(f"{server.url}/readyz").json().get("cancelled") == 1)
            ready = c.get(f"{server.url}/readyz")
            assert ready.status_code == 200 and ready.json()["generators"] == ["gen"]
            assert c.get(url, params={"n": 1}).status_code == 200
            # a job with no cancel point: 503 at the deadline, then reported stuck and replaced
            assert c.get(url, params={"n": 1, "truncation": 1e-30}).status_code == 503
            wait_for(lambda: c.get(f"{server.url}/readyz").status_code == 503, timeout=5)
            stuck = c.get(f"{server.url}/readyz").json()
            assert "stuck" in stuck["error"] and stuck["detail"]["stuck"] == 1, stuck
            assert stuck["detail"]["queued"] == 0
            served = c.get(url, params={"n": 1})  # by the worker started in its place
            assert served.status_code == 200, served.text
        started = time.monotonic()
        code = server.stop(sig=signal.SIGTERM, timeout=20)
        assert time.monotonic() - started < 10, server.log()  # cancel_grace and a margin
        assert code in (0, -signal.SIGTERM), server.log()
        assert "inference worker stuck" in server.log()
    finally:
        server.stop(sig=signal.SIGKILL, timeout=5)
