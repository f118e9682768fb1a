"""uvicorn's HTTP/1.1 protocol with a header read timeout.

uvicorn bounds idle keep-alive connections, but a client that connects and sends its request
line and headers a byte at a time (slowloris) is never closed: every byte cancels the
keep-alive timer. ``HeaderTimeoutProtocol`` closes a connection whose request headers have not
all arrived ``read_timeout`` seconds after its first byte (or after it opened, or after the
previous response). The body's own deadline is the app's (``translate.serve.app``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)


def header_timeout_protocol(read_timeout: float) -> type[H11Protocol]:
    """An ``H11Protocol`` class closing connections whose headers take over ``read_timeout``."""

    class HeaderTimeoutProtocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(read_timeout, self._header_timeout)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timeout(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                log.debug(
                    "closing %s: request headers not received in %s s", self.client, read_timeout
                )
                self.transport.close()

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            waiting = self.conn.their_state is h11.IDLE
            super().data_received(data)
            if waiting and self.conn.their_state is h11.IDLE:
                self._arm()  # still no complete request: keep (or start) the clock
            elif self.conn.their_state is not h11.IDLE:
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._disarm()  # idle now: uvicorn's keep-alive timeout applies

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol
