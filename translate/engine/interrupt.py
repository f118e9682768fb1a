"""Ctrl-C, SIGTERM or SIGHUP during training: finish the step, save, stop; on every rank at
the same step.

SIGTERM (``kill``, a cluster's preemption, ``docker stop``) and SIGHUP (a closed SSH session)
are treated like Ctrl-C; the exit code then says which signal stopped the run, the shell's
way: 128 + the signal's number (130 SIGINT, 143 SIGTERM, 129 SIGHUP), after the state was
saved. The first signal only sets a flag; the loop asks ``should_stop(dist)`` after each step, which
is true on every rank as soon as any rank was interrupted, so all ranks leave the loop after
the same step and rank 0 saves a consistent checkpoint (every rank waits until it is on
disk), all ranks agreeing on the signal too. A second Ctrl-C aborts at once (the
last checkpoint stays intact). torchrun forwards the terminal's Ctrl-C to workers that already
got it from the terminal, so a repeat within ``DEBOUNCE_S`` counts as the same interrupt.
"""

from __future__ import annotations

import logging
import signal
import time
from types import FrameType
from typing import Any

from translate.engine.distributed import Distributed
from translate.errors import TranslateError

log = logging.getLogger("translate.train")

DEBOUNCE_S = 1.0


#: The signals that stop training after a save (where the platform has them).
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class TrainingInterrupted(TranslateError):
    """Ctrl-C, SIGTERM or SIGHUP: the state was saved; the message says how to resume. The
    exit code is 128 + the signal's number (130 for Ctrl-C)."""

    exit_code = 130

    def __init__(self, message: str, *, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.exit_code = 128 + int(signum)


def signal_name(signum: int) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def stopped_by(signum: int) -> str:
    """How the stop message starts: ``interrupted`` (Ctrl-C), ``SIGTERM``, ``SIGHUP``."""
    return "interrupted" if signum == signal.SIGINT else signal.Signals(signum).name


class Interrupts:
    """Installs the handler of ``STOP_SIGNALS`` for the duration of a ``with`` block;
    ``signum`` is the first signal received."""

    def __init__(self, *, announce: bool) -> None:
        self.requested = False
        self.signum = int(signal.SIGINT)
        self.announce = announce  # rank 0 tells the user; other ranks stay quiet
        self._first = 0.0
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and time.monotonic() - self._first > DEBOUNCE_S:
            raise KeyboardInterrupt  # second signal: stop now
        if self.requested:
            return
        self.requested, self._first, self.signum = True, time.monotonic(), signum
        if self.announce:
            log.warning(
                "%s: finishing this step and saving a checkpoint (Ctrl-C again to abort)",
                "interrupt" if signum == signal.SIGINT else signal_name(signum),
            )

    def should_stop(self, dist: Distributed) -> bool:
        """Whether any rank was interrupted (a collective in a distributed run: every rank
        asks after every step). The ranks also agree on the signal (the largest number), so a
        SIGTERM to one worker makes every rank exit 143, not 130 where it was not signalled."""
        signum = dist.maximum(self.signum if self.requested else 0)
        if signum:
            self.signum = signum
        return bool(signum)

    def __enter__(self) -> Interrupts:
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
