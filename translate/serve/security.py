"""Exposing the service safely: bearer-token auth, the bind check, CORS.

With an API key (``--api-key`` or ``TRANSLATE_API_KEY``), every request must carry
``Authorization: Bearer <key>`` (401 otherwise) except the open paths: ``/healthz`` (liveness
probes) and the documentation a browser loads by itself, which holds no data: the web page and
its assets (``/``, ``/static/...``), ``/docs`` and its assets, ``/openapi.json``. The page and
``/docs`` ask for the key and send it with their API calls. Keys are compared in constant time.

Binding an address other than loopback without a key is refused unless
``--allow-unauthenticated`` says it is meant. CORS is off unless ``--cors-origin`` names the
origins a browser may call the API from.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Callable
from typing import Any

from translate.errors import ConfigError

API_KEY_ENV = "TRANSLATE_API_KEY"
#: Paths served without the key, and prefixes of such paths.
OPEN_PATHS = frozenset({"/healthz", "/", "/openapi.json", "/docs"})
OPEN_PREFIXES = ("/static/", "/docs-assets/")


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only listens on this machine."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_exposure(host: str, api_key: str | None, allow_unauthenticated: bool) -> None:
    """Refuse to listen beyond loopback without a key, unless explicitly allowed."""
    if api_key or allow_unauthenticated or is_loopback(host):
        return
    raise ConfigError(
        f"--host {host}: listening beyond this machine needs an API key (--api-key or "
        f"{API_KEY_ENV}); pass --allow-unauthenticated to serve without one"
    )


class BearerAuth:
    """ASGI middleware: 401 unless ``Authorization: Bearer <key>`` (open paths excepted)."""

    def __init__(self, app: Any, api_key: str) -> None:
        if not api_key:
            raise ConfigError("api key: must not be empty")
        self.app = app
        self.key = api_key.encode()

    def authorized(self, scope: dict) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)
        return False

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or is_open(scope["path"]) or self.authorized(scope):
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {"error": "missing or wrong API key: send 'Authorization: Bearer <key>'"}
            | {"detail": None}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="translate"'),
                    (b"connection", b"close"),  # an unread body must not hold the connection
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
