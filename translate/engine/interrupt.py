"""Ctrl-C during training: finish the step, save, stop; on every rank at the same step.

The first SIGINT only sets a flag; the loop asks ``should_stop(dist)`` after each step, which
is true on every rank as soon as any rank was interrupted, so all ranks leave the loop after
the same step and rank 0 saves a consistent checkpoint. A second Ctrl-C aborts at once (the
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


class TrainingInterrupted(TranslateError):
    """Ctrl-C: the state was saved; the message says how to resume."""

    exit_code = 130


class Interrupts:
    """Installs the SIGINT handler for the duration of a ``with`` block."""

    def __init__(self, *, announce: bool) -> None:
        self.requested = False
        self.announce = announce  # rank 0 tells the user; other ranks stay quiet
        self._first = 0.0
        self._previous: Any = None

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and time.monotonic() - self._first > DEBOUNCE_S:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        if self.requested:
            return
        self.requested, self._first = True, time.monotonic()
        if self.announce:
            log.warning(
                "interrupt: finishing this step and saving a checkpoint (Ctrl-C again to abort)"
            )

    def should_stop(self, dist: Distributed) -> bool:
        """Whether any rank was interrupted (a collective in a distributed run: every rank
        asks after every step)."""
        return dist.any(self.requested)

    def __enter__(self) -> Interrupts:
        self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)
