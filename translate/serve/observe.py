"""Observability: Prometheus metrics (``GET /metrics``) and one structured access-log line per
request.

``Observer`` wraps the app as plain ASGI middleware, so it sees every response, errors and
refusals included, and it times the whole request (body upload, queue, inference, encoding).
Metrics live in the app's own ``CollectorRegistry`` (two apps in one process do not mix):

====================================  ==========  ===========================================
``translate_requests_total``          counter     requests by ``model`` and ``status``
``translate_request_seconds``         histogram   latency by ``model``
``translate_batch_size``              histogram   images per inference batch
``translate_queue_depth``             gauge       requests waiting for a worker
``translate_running``                 gauge       requests being translated
``translate_pixels_in_flight``        gauge       input pixels being translated
``translate_memory_budget_bytes``     gauge       the work budget (``--max-memory`` less baseline)
``translate_memory_reserved_bytes``   gauge       the part of it held by running work
====================================  ==========  ===========================================

The access log (logger ``translate.serve.access``, INFO) is one JSON object per request:
method, path, model, status, ms, request and response bytes, client. Status 499 means the
client went away before the answer (nothing was sent); its ``note`` says when.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

access_log = logging.getLogger("translate.serve.access")

_MODEL_PATH = re.compile(r"^/v1/models/([^/]+)/")
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 32)
CLIENT_GONE = 499  # nginx's "client closed request": logged, never sent


class Metrics:
    """The service's Prometheus metrics; pool figures are read when scraped."""

    def __init__(self, models: Iterable[str], pool_stats: Callable[[], dict[str, Any] | None]):
        self.models = set(models)
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "translate_requests",
            "HTTP requests by model and status.",
            ["model", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "translate_request_seconds",
            "Request latency (upload, queue, inference, encoding) by model.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch = Histogram(
            "translate_batch_size",
            "Images per inference batch.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )

        def stat(key: str) -> Callable[[], float]:
            def read() -> float:
                stats = pool_stats()
                return float((stats or {}).get(key) or 0)

            return read

        for name, key, text in (
            ("translate_queue_depth", "queued", "Requests waiting for a worker."),
            ("translate_running", "running", "Requests being translated."),
            ("translate_pixels_in_flight", "pixels_in_flight", "Input pixels being translated."),
            ("translate_memory_budget_bytes", "memory_budget", "Memory budget for work."),
            ("translate_memory_reserved_bytes", "memory_reserved", "Budget held by running work."),
        ):
            Gauge(name, text, registry=self.registry).set_function(stat(key))

    def model_label(self, path: str) -> str:
        """The model a path is about: a served name, ``unknown``, or ``-`` (not a model URL);
        unknown names are not labels of their own (clients could grow the series unbounded)."""
        match = _MODEL_PATH.match(path)
        if not match:
            return "-"
        return match.group(1) if match.group(1) in self.models else "unknown"

    def observe_batch(self, size: int) -> None:
        self.batch.observe(size)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class Observer:
    """ASGI middleware: count, time and log every HTTP request."""

    def __init__(self, app: Any, metrics: Metrics, *, log_requests: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        info = {"status": 500, "bytes_in": 0, "bytes_out": 0}

        async def counting_receive() -> dict:
            message = await receive()
            info["bytes_in"] += len(message.get("body", b""))
            return message

        async def recording_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                info["status"] = message["status"]
                info["started"] = True
            elif message["type"] == "http.response.body":
                info["bytes_out"] += len(message.get("body", b""))
            await send(message)

        scope.setdefault("state", {})
        try:
            await self.app(scope, counting_receive, recording_send)
        except Exception:
            # the app's handler has logged it (with its traceback) and answered 500; re-raised,
            # uvicorn would log the same traceback a second time
            if "started" not in info:
                raise
        finally:
            gone = scope["state"].get("client_gone")
            status = CLIENT_GONE if gone else info["status"]
            seconds = time.perf_counter() - started
            model = self.metrics.model_label(scope["path"])
            self.metrics.requests.labels(model, str(status)).inc()
            if model != "-":
                self.metrics.latency.labels(model).observe(seconds)
            if self.log_requests:
                client = scope.get("client")
                access_log.info(
                    "%s",
                    json.dumps(
                        {
                            "method": scope["method"],
                            "path": scope["path"],
                            "model": None if model == "-" else model,
                            "status": status,
                            "ms": round(seconds * 1000, 1),
                            "bytes_in": info["bytes_in"],
                            "bytes_out": info["bytes_out"],
                            "client": f"{client[0]}:{client[1]}" if client else None,
                        }
                        | ({"note": gone} if gone else {})
                    ),
                )
