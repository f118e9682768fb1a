"""Cooperative cancellation of a running inference batch.

Python cannot stop a thread from outside, so a batch whose requests have all given up (their
deadline passed, or their clients left) is asked to stop: the pool sets the batch's cancel
event, and the worker running it raises ``Cancelled`` at its next *cancel point*. The cancel
points are every PyTorch module's forward (a global forward pre-hook, ``torch_cancel_points``,
installed while the service runs) and ``check()`` calls in the pool's own code: a translation
or a sampling run stops within one layer of the generator, and a tiled image within one tile.

What cannot be interrupted this way: one layer's own computation (bounded by the memory budget
that priced it), an ONNX Runtime session's ``run`` and any plugin code that loops without
calling a module. Such a batch runs on; the pool then counts its worker as stuck (``/readyz``
answers 503) and starts another worker in its place (``translate.serve.pool``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Cancelled", "cancelling", "check", "torch_cancel_points"]

_local = threading.local()


class Cancelled(Exception):
    """The batch was cancelled: every request waiting for it has given up."""


def check() -> None:
    """Raise ``Cancelled`` if the batch this thread runs has been cancelled (else nothing)."""
    event: threading.Event | None = getattr(_local, "event", None)
    if event is not None and event.is_set():
        raise Cancelled("every request of this batch gave up (deadline or client gone)")


@contextmanager
def cancelling(event: threading.Event) -> Iterator[None]:
    """While inside, ``check()`` in this thread raises once ``event`` is set."""
    previous = getattr(_local, "event", None)
    _local.event = event
    try:
        yield
    finally:
        _local.event = previous


def _pre_hook(module: Any, args: Any) -> None:
    check()


@contextmanager
def torch_cancel_points() -> Iterator[None]:
    """Every PyTorch module's forward is a cancel point while inside (all threads; a thread
    with no batch of the pool pays one attribute lookup per module call)."""
    from torch.nn.modules.module import register_module_forward_pre_hook

    handle = register_module_forward_pre_hook(_pre_hook)
    try:
        yield
    finally:
        handle.remove()
