"""Admission at the service's edge: request bodies (size, memory share, read timeout,
multipart), the wait for a result (deadline, client gone).

Everything here runs in the event loop and decodes nothing: pixels are only decoded by the
inference workers, after the header has been checked and the request priced.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Request
from pydantic import BeforeValidator
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from translate.errors import ConfigError
from translate.serve.config import INTEGER_TEXT, NUMBER_TEXT
from translate.serve.images import ApiError


def _written_as(pattern: re.Pattern[str], kind: str) -> BeforeValidator:
    """Only plain decimal text (what the schema's integer or number means): pydantic alone
    would also take ``0.0``, `` 1``, ``1_000`` for an integer and ``inf``, ``nan`` for a number."""

    def check(value: Any) -> Any:
        if isinstance(value, str) and not pattern.fullmatch(value):
            raise ValueError(f"must be {kind} in decimal digits, got {value[:40]!r}")
        return value

    return BeforeValidator(check)


#: Query parameter types: an integer, a (finite) number, written plainly.
QueryInt = Annotated[int, _written_as(INTEGER_TEXT, "an integer")]
QueryNumber = Annotated[float, _written_as(NUMBER_TEXT, "a finite number")]


def single_values(request: Request, repeatable: tuple[str, ...] = ()) -> None:
    """Refuse (422) a query parameter given more than once (the schema allows one value; a
    server that took the last would act on what the client may not have meant), except the
    ``repeatable`` ones (a list in the schema: sampling's ``code``)."""
    params = request.query_params
    keys = params.keys()
    for key in dict.fromkeys(k for k in keys if k not in repeatable):
        count = len(params.getlist(key))
        if count > 1:
            raise ConfigError(f"query parameter {key!r}: given {count} times; give it once")


class ClientGone(Exception):
    """The client closed the connection before its answer (normal traffic, not an error)."""


class DeadlinePassed(Exception):
    """The request's ``request_timeout`` passed while it waited or ran."""


class Uploads:
    """Bytes of request bodies held in memory (received or queued), bounded by ``limit``.
    Used from the event loop only."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.held = 0

    def reserve(self, n: int) -> bool:
        if self.limit is not None and self.held + n > self.limit:
            return False
        self.held += n
        return True

    def release(self, n: int) -> None:
        self.held -= n


def declared_size(request: Request, limit: int) -> int | None:
    """The body's Content-Length (None when chunked); 413 at once when above ``limit``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"upload too large: more than {limit} bytes", {"max_bytes": limit})
    return int(declared) if declared.isdigit() else None


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The request body, refused (413) as soon as it exceeds ``limit`` bytes, and (408, the
    connection closed) when it has not all arrived within ``timeout`` seconds."""
    chunks: list[bytes] = []
    total = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                total += len(chunk)
                if total > limit:
                    raise ApiError(
                        413, f"upload too large: more than {limit} bytes", {"max_bytes": limit}
                    )
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(
            408,
            f"request body not received within {timeout:g} s ({total} bytes arrived)",
            {"read_timeout_s": timeout},
            {"Connection": "close"},
        ) from None
    except ClientDisconnect:
        raise ClientGone(f"during the upload ({total} bytes received)") from None
    return b"".join(chunks)


async def until_disconnected(request: Request) -> None:
    """Returns when the client closes the connection (the body has been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def await_result(request: Request, future: Any, deadline: float, pool: Any) -> Any:
    """The job's result; ``ClientGone`` if the client leaves first, ``DeadlinePassed`` if the
    deadline does. Either way the ``pool`` is told (``InferencePool.give_up``): a job still
    queued leaves the queue, a running batch nobody waits for any more is cancelled."""
    result = asyncio.wrap_future(future)
    gone = asyncio.ensure_future(until_disconnected(request))
    try:
        done, _ = await asyncio.wait(
            {result, gone},
            timeout=max(0.0, deadline - time.perf_counter()),
            return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        gone.cancel()
    if result in done:
        return result.result()
    where = pool.give_up(future)
    result.cancel()
    if where == "done" and future.done() and not future.cancelled():
        return future.result()  # it finished just now
    phase = "while " + ("queued" if where == "queued" else "being processed")
    if gone in done:
        raise ClientGone(phase)
    raise DeadlinePassed(phase)


async def split_upload(request: Request, body: bytes) -> tuple[bytes, dict[str, str], bytes | None]:
    """(image bytes, form fields, style image bytes or None) from a multipart body (the image
    in field 'image' or the first file; a multimodal model's reference in field 'style'), or
    (body, {}, None) for a raw one."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return body, {}, None

    async def stream() -> AsyncIterator[bytes]:
        yield body

    try:
        form = await MultiPartParser(request.headers, stream(), max_files=2, max_fields=32).parse()
    except MultiPartException as exc:
        raise ApiError(400, f"bad multipart body: {exc.message}") from None
    try:
        files = {k: v for k, v in form.multi_items() if not isinstance(v, str)}
        style = files.pop("style", None)
        if not files:
            raise ApiError(400, "multipart body has no file: send the image in field 'image'")
        image = files.get("image") or next(iter(files.values()))
        data = await image.read()
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        return data, fields, (await style.read()) if style is not None else None
    finally:
        await form.close()
