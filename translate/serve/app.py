"""The FastAPI application: translation endpoint, model list, health, metrics, the web page.

``create_app(models, config, memory_budget=...)`` builds the app from loaded ``ServedModel``s;
the inference pool starts and stops with the app's lifespan (uvicorn finishes in-flight requests
on SIGTERM, then the pool drains). Every client error is a JSON body ``{"error": "...",
"detail": ...}`` with a 4xx status; the handler for anything unexpected answers 500 (with no
server path or message in it: those go to the log) and the server keeps running.

Admission happens at the edge, before any pixel is decoded: the API key (``security``), the
upload's size and its share of the memory budget, the body's read timeout (408), the image
header (format, pixels) and the request's price against the budget (``budget``); the pool then
runs it when its price fits. A request has a deadline (``request_timeout``) over upload, queue
and inference; a client that goes away is one INFO line, and its queued job is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

import translate
from translate.errors import ConfigError, DataError, TranslateError
from translate.fields import SEED_MAX
from translate.serve.admission import (
    ClientGone,
    DeadlinePassed,
    QueryInt,
    Uploads,
    await_result,
    declared_size,
    read_body,
    single_values,
    split_upload,
)
from translate.serve.budget import split_budget
from translate.serve.cancel import torch_cancel_points
from translate.serve.config import OUTPUT_FORMATS, ServeConfig
from translate.serve.dragging import add_drag_route, editors_of
from translate.serve.images import ApiError, check_header, output_format
from translate.serve.models import ServedModel
from translate.serve.observe import Metrics, Observer
from translate.serve.pages import add_pages
from translate.serve.pool import InferencePool, OverBudget, PoolClosed, QueueFull
from translate.serve.sampling import ServedGenerator, add_sample_route
from translate.serve.schema import install as install_schema
from translate.serve.security import BearerAuth
from translate.serve.work import BatchKey, MultimodalWork, Work, check_multimodal, run_batch

log = logging.getLogger(__name__)

#: Query parameters of the endpoint itself; any other is one of the model's options.
RESERVED = ("format", "tile_size", "tile_overlap", "samples", "seed")


class Scrubber:
    """Replaces the server's paths (model locations) in messages sent to clients."""

    def __init__(self, models: Sequence[ServedModel | ServedGenerator]) -> None:
        self.paths: list[tuple[str, str]] = []
        for m in models:
            if m.source.kind == "model":
                continue
            where = Path(m.source.location)
            for text in {str(where), str(where.resolve()), str(where.absolute())}:
                self.paths.append((text, f"<model {m.name}>"))
        self.paths.sort(key=lambda p: -len(p[0]))  # longest first: no partial replacement

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            for path, name in self.paths:
                value = value.replace(path, name)
            return value
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        return value


class ErrorBody(BaseModel):
    """Every error response."""

    error: str
    detail: Any = None


def _error(status: int, message: str, detail: Any = None, **headers: str) -> JSONResponse:
    body = ErrorBody(error=message, detail=detail).model_dump()
    return JSONResponse(body, status_code=status, headers=headers or None)


def _status_of(exc: TranslateError) -> int:
    if isinstance(exc, ConfigError):
        return 422
    if isinstance(exc, DataError):
        return 400
    return 500  # a bad checkpoint on the server's side, not the client's input


def create_app(
    models: Sequence[ServedModel],
    config: ServeConfig | None = None,
    *,
    memory_budget: int | None = None,
    generators: Sequence[ServedGenerator] = (),
) -> FastAPI:
    """The HTTP service for ``models`` (names must be unique) under ``config``'s limits.
    ``memory_budget``: bytes for work in flight (request bodies and the running batches'
    price, see ``translate.serve.budget``); None: unbounded. ``generators``: generating
    models (warmed up: ``ServedGenerator.warm_up``), sampled at ``/v1/models/{name}/sample``."""
    config = config or ServeConfig()
    by_name = {m.name: m for m in models}
    samplers = {g.name: g for g in generators}
    if (
        len(by_name) != len(models)
        or len(samplers) != len(generators)
        or (set(by_name) & set(samplers))
    ):
        raise ConfigError("served model names must be unique")
    editors = editors_of(generators)  # the style generators: POST /v1/models/{name}/drag
    upload_budget, work_budget = split_budget(memory_budget) if memory_budget else (None, None)
    uploads = Uploads(upload_budget)
    scrub = Scrubber([*models, *generators])

    def pool_stats() -> dict[str, Any] | None:
        pool = app.state.pool
        return None if pool is None else {**pool.stats(), "uploads_held": uploads.held}

    metrics = Metrics([*by_name, *samplers], pool_stats)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cancel_points = torch_cancel_points()  # a batch nobody waits for stops at its next layer
        cancel_points.__enter__()
        app.state.pool = InferencePool(
            run_batch(by_name, samplers, editors),
            workers=config.workers,
            queue_size=config.queue_size,
            max_batch=config.max_batch,
            min_retry_after=config.retry_after,
            memory_budget=work_budget,
            on_batch=metrics.observe_batch,
            cancel_grace=config.cancel_grace,
        )
        log.info("ready: %s", ", ".join([*by_name, *samplers]))
        try:
            yield
        finally:
            # uvicorn has finished the in-flight requests (each within its deadline): what
            # still runs is nobody's; it gets cancel_grace to stop, then is left behind
            finished = await asyncio.to_thread(app.state.pool.shutdown, timeout=config.cancel_grace)
            if not finished:
                log.warning("shutdown: an inference worker is stuck; exiting without it")
            cancel_points.__exit__(None, None, None)

    app = FastAPI(
        title="translate",
        version=translate.__version__,
        description="Image-to-image translation with GANs: translate images with the served "
        'models. Errors are JSON: {"error": "...", "detail": ...}.',
        lifespan=lifespan,
        docs_url=None,  # served by translate.serve.pages with local assets
        redoc_url=None,
    )
    app.state.pool = None
    app.state.metrics = metrics

    def retry_after() -> str:
        pool: InferencePool | None = app.state.pool
        return str(pool.retry_after() if pool else config.retry_after)

    # ------------------------------------------------------------------ errors
    def error(status: int, message: str, detail: Any = None, **headers: str) -> JSONResponse:
        return _error(status, scrub(message), scrub(detail), **headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error(exc.status, exc.message, exc.detail, **exc.headers)

    @app.exception_handler(TranslateError)
    async def translate_error(request: Request, exc: TranslateError) -> JSONResponse:
        status = _status_of(exc)
        if status == 500:  # the server's problem: its message (paths) goes to the log only
            log.error("%s on %s: %s", exc.__class__.__name__, request.url.path, exc)
            return error(500, "internal error: the model could not be loaded or run")
        return error(status, str(exc))

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, exc: QueueFull) -> JSONResponse:
        return error(503, str(exc), None, **{"Retry-After": str(exc.retry_after)})

    @app.exception_handler(OverBudget)
    async def over_budget(request: Request, exc: OverBudget) -> JSONResponse:
        detail = {"needs_bytes": exc.cost, "budget_bytes": exc.budget}
        return error(413, f"{exc}; send a smaller image or a smaller tile_size", detail)

    @app.exception_handler(PoolClosed)
    async def closed(request: Request, exc: PoolClosed) -> JSONResponse:
        return error(503, str(exc), None, **{"Retry-After": str(config.retry_after)})

    @app.exception_handler(DeadlinePassed)
    async def deadline(request: Request, exc: DeadlinePassed) -> JSONResponse:
        message = f"request deadline of {config.request_timeout:g} s passed {exc}"
        log.info("%s: %s", request.url.path, message)
        return error(503, message, None, **{"Retry-After": retry_after()})

    @app.exception_handler(ClientGone)
    async def client_gone(request: Request, exc: ClientGone) -> Response:
        request.state.client_gone = f"client went away {exc}"  # the access log's note
        log.debug("client %s went away %s", _client(request), exc)
        return Response(status_code=400)  # never sent: the connection is closed

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail), None, **(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"where": ".".join(map(str, e.get("loc", ()))), "problem": e.get("msg", "")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"where": "request", "problem": "invalid"}
        return error(422, f"{first['where']}: {first['problem']}", errors)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s", request.url.path, exc_info=exc)
        return error(500, "internal error", exc.__class__.__name__)

    # ------------------------------------------------------------------ translation
    def lookup(name: str) -> ServedModel:
        model = by_name.get(name)
        if model is None and name in samplers:
            raise ApiError(
                404,
                f"model {name!r} generates images from noise; it translates none "
                f"(GET /v1/models/{name}/sample)",
            )
        if model is None:
            raise ApiError(404, f"unknown model {name!r}", {"models": [*by_name, *samplers]})
        return model

    error_responses: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorBody, "description": text}
        for code, text in (
            (400, "empty, corrupt or malformed upload"),
            (404, "unknown model"),
            (408, "the body did not arrive within the read timeout"),
            (413, "upload or image too large, or over the memory budget"),
            (415, "not an image, or a format that is not accepted"),
            (422, "bad option"),
            (
                503,
                "busy (queue or upload memory full), deadline passed, or shutting down; "
                "see Retry-After",
            ),
        )
    }

    @app.post(
        "/v1/models/{name}/translate",
        summary="Translate one image",
        response_class=Response,
        responses={
            200: {
                "content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}},
                "description": "the translated image; headers X-Model, X-Processing-Time-Ms",
            },
            **error_responses,
        },
    )
    async def translate_image(
        request: Request,
        name: str,
        format: Annotated[  # the query parameter's public name
            str | None, Query(description="png (default), jpeg or webp; or send Accept")
        ] = None,
        tile_size: Annotated[
            QueryInt | None,
            Query(ge=0, description="tile side for large images (0: never tile); model default"),
        ] = None,
        tile_overlap: Annotated[
            QueryInt | None, Query(ge=0, description="overlap of tiles; a quarter of the tile")
        ] = None,
        samples: Annotated[
            QueryInt | None, Query(description="a model with a code: K outputs side by side")
        ] = None,
        seed: Annotated[
            QueryInt | None, Query(ge=0, le=SEED_MAX, description="same seed, same samples")
        ] = None,
    ) -> Response:
        """Any other query parameter (or multipart field) is one of the model's options, e.g.
        ``direction=b2a`` for CycleGAN; ``GET /v1/models`` lists them."""
        started = time.perf_counter()
        deadline = started + config.request_timeout
        model = lookup(name)
        single_values(request)
        fmt = output_format(format, request.headers.get("accept", ""))
        options = {
            k.replace("-", "_"): v
            for k, v in request.query_params.items()
            if k.replace("-", "_") not in RESERVED
        }
        tiling = None
        if tile_size is not None or tile_overlap is not None:
            tile = tile_size if tile_size is not None else model.translator.tile_size
            if tile and tile_overlap is not None:  # at most the tile less one multiple
                m = model.translator.requirements.multiple_of
                tile_overlap = min(tile_overlap, max(0, tile // m * m - m))
            tiling = (tile, tile_overlap)
            model.translator.with_tiling(*tiling)  # refuses a tile the model cannot take
        pool: InferencePool | None = request.app.state.pool
        if pool is None:
            raise PoolClosed("the server is not ready")
        declared = declared_size(request, config.max_upload_bytes)
        held = config.max_upload_bytes if declared is None else declared
        if not uploads.reserve(held):
            raise ApiError(
                503,
                "server busy: too many uploads in memory; retry later",
                None,
                {"Retry-After": retry_after()},
            )
        try:
            timeout = min(config.read_timeout, max(0.0, deadline - time.perf_counter()))
            body = await read_body(request, config.max_upload_bytes, timeout)
            uploads.release(held - len(body))  # keep only what is held
            held = len(body)
            data, fields, style = await split_upload(request, body)
            del body
            options = {**{k.replace("-", "_"): v for k, v in fields.items()}, **options}
            opts = model.parse_options(options)
            model.check_options(opts)
            header = check_header(
                data, formats=config.formats, max_pixels=config.max_pixels, scale=model.scale
            )
            many = check_multimodal(
                model, samples=samples, seed=seed, style=style, max_samples=config.max_samples,
                formats=config.formats, max_pixels=config.max_pixels,
            )  # fmt: skip
            w, h = header.size
            tile_arg = -1 if tiling is None else tiling[0]
            cost = model.cost.bytes(w, h, tile_arg) if model.cost is not None else 0
            work = Work(data, fmt) if many is None else MultimodalWork(data, fmt, *many)
            key = BatchKey(model.name, opts, tiling, header.size, many is not None)
            future = pool.submit(key, work, cost=cost, pixels=w * h * (many or (1,))[0])
            done = await await_result(request, future, deadline, pool)
        finally:
            uploads.release(held)
        content, (w, h) = done.value
        total_ms = (time.perf_counter() - started) * 1000
        return Response(
            content,
            media_type=OUTPUT_FORMATS[fmt][1],
            headers={
                "X-Model": model.name,
                "X-Processing-Time-Ms": f"{total_ms:.1f}",
                "X-Queue-Time-Ms": f"{done.queued_s * 1000:.1f}",
                "X-Batch-Size": str(done.batch_size),
                "X-Image-Size": f"{w}x{h}",
                **({"X-Samples": str(many[0])} if many else {}),
                "Content-Disposition": f'inline; filename="{model.name}.{fmt}"',
            },
        )

    # ------------------------------------------------------------------ sampling
    add_sample_route(app, samplers, by_name, config, error_responses)
    add_drag_route(
        app, editors, [*by_name, *samplers], config, error_responses, lambda n: samplers[n].price(1)
    )

    # ------------------------------------------------------------------ listing, health
    @app.get("/v1/models", summary="Served models, their options and limits")
    async def list_models() -> dict[str, Any]:
        limits = dict(
            max_pixels=config.max_pixels,
            max_upload_bytes=config.max_upload_bytes,
            formats=list(config.formats),
        )
        listing: dict[str, Any] = {"models": [m.describe(**limits) for m in by_name.values()]}
        if samplers:  # generating models: GET /v1/models/{name}/sample
            listing["generators"] = [
                g.describe(max_samples=config.max_samples) for g in samplers.values()
            ]
        return listing

    @app.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        summary="Readiness: models loaded and the pool takes work (503 otherwise)",
        responses={503: {"model": ErrorBody}},
    )
    async def readyz(request: Request) -> Any:
        stats = pool_stats()
        if stats is None or stats["closed"]:
            return _error(503, "not ready", stats)
        listing = {"models": list(by_name), "generators": list(samplers)}
        if stats["stuck"]:
            stuck_s = request.app.state.pool.stuck_for()
            return _error(
                503,
                f"not ready: {stats['stuck']} inference worker(s) stuck on a job whose "
                f"requests gave up {stuck_s:.0f} s ago",
                {**listing, **stats},
            )
        return {"status": "ready", **listing, **stats}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    install_schema(app, models, generators, config)  # before add_pages: bearer auth wraps it
    add_pages(app, bearer_auth=bool(config.api_key))

    # middleware, innermost first: auth, then CORS (preflights need no key), then the
    # observer (it counts and logs every answer, refusals included)
    if config.api_key:
        app.add_middleware(BearerAuth, api_key=config.api_key)
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["X-Model", "X-Processing-Time-Ms", "X-Image-Size", "X-Samples"],
        )
    app.add_middleware(Observer, metrics=metrics, log_requests=config.access_log)
    return app


def _client(request: Request) -> str:
    client = request.client
    return f"{client.host}:{client.port}" if client else "?"
