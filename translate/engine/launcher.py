"""Local worker processes for ``--nproc-per-node``, and workers that never outlive their launcher.

``launch`` runs a function in N local processes with torch's elastic launcher (what ``torchrun
--standalone --nproc-per-node N`` does). What a cluster does to the launcher reaches the workers:

- SIGINT, SIGTERM and SIGHUP to the launcher are forwarded to every worker, which finish the
  step, agree on the stop step, save one checkpoint and exit 128 + the signal (130, 143, 129);
  the launcher exits with the workers' code (``Interrupts`` in ``translate.engine.interrupt``).
- SIGKILL to the launcher (the OOM killer, a scheduler's hard kill) cannot be caught: every
  worker asked the kernel for SIGTERM when its parent dies (``die_with_parent``: Linux's
  ``PR_SET_PDEATHSIG``), so the workers save and stop as above; a watchdog thread ends a worker
  that is still alive ``ORPHAN_GRACE_S`` seconds after its parent is gone (stuck in a collective).
- A worker that fails exits non-zero at once (never waits for the launcher): the launcher then
  ends the others, and ranks waiting for it in a collective see the closed connection.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = [
    "ORPHAN_GRACE_S",
    "die_with_parent",
    "env_rank",
    "launch",
    "peer_lost",
    "quiet_launcher_logs",
]

ORPHAN_GRACE_S = 20.0
"""Seconds an orphaned worker has to save after its launcher died, before it is killed."""

LAUNCHER_PID = "TRANSLATE_LAUNCHER_PID"
"""Environment variable: the launcher's process id, for the workers' parent-death check."""

#: Signals the launcher forwards to its workers as a request to save and stop.
FORWARDED = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)

#: Messages of a collective whose peer process is gone (gloo; NCCL's watchdog ends the process).
_PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "Broken pipe")


def env_rank() -> tuple[int, int, int]:
    """(rank, local rank, world size) from torchrun's environment; (0, 0, 1) outside it."""
    env = os.environ
    return (
        int(env.get("RANK", "0")),
        int(env.get("LOCAL_RANK", "0")),
        int(env.get("WORLD_SIZE", "1")),
    )


def launch(nproc: int, entrypoint: Callable[..., Any], *args: Any) -> dict[int, Any]:
    """Run ``entrypoint(*args)`` in ``nproc`` local worker processes, as ``torchrun
    --standalone --nproc-per-node nproc`` would (torch's elastic launcher, no restarts);
    returns each rank's return value. Raises ``ChildFailedError`` when a worker fails (exits
    non-zero); ``received`` on the error is the stop signal the launcher got, if any."""
    import uuid

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",  # a free port, as torchrun --standalone
        max_restarts=0,
        monitor_interval=0.1,
        start_method="spawn",
        # SIGINT/SIGTERM/SIGHUP are the workers' to handle (stop after the same step, rank 0
        # saves, exit 128 + signal); the agent's own handler would instead end them at once and
        # wait for its shutdown timeout (30 s) on workers that wait for it to collect results
        signals_to_handle="SIGQUIT",
    )
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # torchrun's default for several workers
    os.environ[LAUNCHER_PID] = str(os.getpid())
    received: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        """Pass the signal to the workers, which stop and save. (A terminal's Ctrl-C reaches
        them directly too; they count a repeat within a second as the same interrupt.)"""
        received.append(signum)
        for worker in multiprocessing.active_children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signum)  # type: ignore[arg-type]

    main_thread = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, forward) for s in FORWARDED} if main_thread else {}
    try:
        return elastic_launch(config, entrypoint)(*args)
    except ChildFailedError as exc:
        exc.received = received[0] if received else None  # type: ignore[attr-defined]
        raise
    finally:
        os.environ.pop(LAUNCHER_PID, None)
        for s, handler in previous.items():
            signal.signal(s, handler)


def die_with_parent(grace_s: float = ORPHAN_GRACE_S) -> None:
    """In a worker: SIGTERM (save and stop) when the launcher dies, even by SIGKILL, and a
    hard exit ``grace_s`` seconds later if still alive. Linux only (elsewhere a no-op)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = int(os.environ.get(LAUNCHER_PID, "0")) or os.getppid()
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM))
    if os.getppid() != parent:  # the launcher died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        time.sleep(grace_s)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="translate-parent-watch", daemon=True).start()


def peer_lost(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective failing because another process is gone (it failed
    and reported its own error, or was killed)."""
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in _PEER_GONE)


def quiet_launcher_logs() -> None:
    """torch's elastic agent logs at WARNING on every start, and a worker's non-zero exit with
    a traceback of its own; keep our CLI's output ours (the worker printed why it stopped, and
    the launcher says which process failed when it did not)."""
    import logging

    for name in ("torch.distributed.elastic", "torch.distributed.launcher"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    sys.stderr.flush()
