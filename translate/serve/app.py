"""The FastAPI application: translation endpoint, model list, health, and the web page.

``create_app(models, config)`` builds the app from loaded ``ServedModel``s; the inference pool
starts and stops with the app's lifespan (uvicorn finishes in-flight requests on SIGTERM, then
the pool drains). Every client error is a JSON body ``{"error": "...", "detail": ...}`` with a
4xx status; the handler for anything unexpected answers 500 and the server keeps running.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Hashable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

import translate
from translate.errors import ConfigError, DataError, TranslateError
from translate.serve.config import OUTPUT_FORMATS, ServeConfig
from translate.serve.images import ApiError, check_header, decode, encode
from translate.serve.models import ServedModel
from translate.serve.pool import InferencePool, PoolClosed, QueueFull

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
#: Query parameters of the endpoint itself; any other is one of the model's options.
RESERVED = ("format", "tile_size", "tile_overlap")


class ErrorBody(BaseModel):
    """Every error response."""

    error: str
    detail: Any = None


@dataclass(frozen=True)
class BatchKey:
    """Requests that may share one batch: same model, options, tiling and image size."""

    model: str
    opts: Hashable
    tiling: tuple[int | None, int | None] | None  # None: the model's own settings
    size: tuple[int, int]


@dataclass(frozen=True)
class Work:
    data: bytes
    format: str


def _error(status: int, message: str, detail: Any = None, **headers: str) -> JSONResponse:
    body = ErrorBody(error=message, detail=detail).model_dump()
    return JSONResponse(body, status_code=status, headers=headers or None)


def _status_of(exc: TranslateError) -> int:
    if isinstance(exc, ConfigError):
        return 422
    if isinstance(exc, DataError):
        return 400
    return 500  # a bad checkpoint on the server's side, not the client's input


def _output_format(value: str | None, accept: str) -> str:
    """``?format=`` wins; else the first image type the Accept header names; else PNG."""
    if value is not None:
        fmt = value.lower()
        if fmt not in OUTPUT_FORMATS:
            raise ApiError(
                422,
                f"format: {value!r} is not one of png, jpeg, webp",
                {"formats": ["png", "jpeg", "webp"]},
            )
        return fmt
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        for key, (_, media_type) in OUTPUT_FORMATS.items():
            if media == media_type:
                return key
    return "png"


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    too_large = ApiError(413, f"upload too large: more than {limit} bytes", {"max_bytes": limit})
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _split_upload(request: Request, body: bytes) -> tuple[bytes, dict[str, str]]:
    """(image bytes, form fields) from a multipart body, or (body, {}) for a raw one."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return body, {}

    async def stream() -> AsyncIterator[bytes]:
        yield body

    try:
        form = await MultiPartParser(request.headers, stream(), max_files=1, max_fields=32).parse()
    except MultiPartException as exc:
        raise ApiError(400, f"bad multipart body: {exc.message}") from None
    try:
        files = [(k, v) for k, v in form.multi_items() if not isinstance(v, str)]
        if not files:
            raise ApiError(400, "multipart body has no file: send the image in field 'image'")
        data = await files[0][1].read()
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        return data, fields
    finally:
        await form.close()


def _run_batch(models: dict[str, ServedModel]) -> Any:
    """The pool's batch function: decode, translate together, encode (in a worker thread)."""

    def run(key: BatchKey, items: Sequence[Work]) -> list[Any]:
        model = models[key.model]
        translator = model.variant(key.opts)
        if key.tiling is not None:
            translator = translator.with_tiling(*key.tiling)
        results: list[Any] = [None] * len(items)
        images, where = [], []
        for i, item in enumerate(items):
            try:
                images.append(decode(item.data))
                where.append(i)
            except ApiError as exc:
                results[i] = exc
        if images:
            for i, out in zip(where, translator(images), strict=True):
                results[i] = (encode(out, items[i].format), out.size)
        return results

    return run


def create_app(models: Sequence[ServedModel], config: ServeConfig | None = None) -> FastAPI:
    """The HTTP service for ``models`` (names must be unique) under ``config``'s limits."""
    config = config or ServeConfig()
    by_name = {m.name: m for m in models}
    if len(by_name) != len(models):
        raise ConfigError("served model names must be unique")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = InferencePool(
            _run_batch(by_name),
            workers=config.workers,
            queue_size=config.queue_size,
            max_batch=config.max_batch,
            min_retry_after=config.retry_after,
        )
        log.info("ready: %s", ", ".join(by_name))
        try:
            yield
        finally:
            # uvicorn has finished the in-flight requests; the pool drains what is left
            await asyncio.to_thread(app.state.pool.shutdown)

    app = FastAPI(
        title="translate",
        version=translate.__version__,
        description="Image-to-image translation with GANs: translate images with the served "
        'models. Errors are JSON: {"error": "...", "detail": ...}.',
        lifespan=lifespan,
    )
    app.state.pool = None

    # ------------------------------------------------------------------ errors
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.detail)

    @app.exception_handler(TranslateError)
    async def translate_error(request: Request, exc: TranslateError) -> JSONResponse:
        return _error(_status_of(exc), str(exc))

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, exc: QueueFull) -> JSONResponse:
        return _error(503, str(exc), None, **{"Retry-After": str(exc.retry_after)})

    @app.exception_handler(PoolClosed)
    async def closed(request: Request, exc: PoolClosed) -> JSONResponse:
        return _error(503, str(exc), None, **{"Retry-After": str(config.retry_after)})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), None, **(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"where": ".".join(map(str, e.get("loc", ()))), "problem": e.get("msg", "")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"where": "request", "problem": "invalid"}
        return _error(422, f"{first['where']}: {first['problem']}", errors)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s", request.url.path, exc_info=exc)
        return _error(500, "internal error", exc.__class__.__name__)

    # ------------------------------------------------------------------ translation
    def lookup(name: str) -> ServedModel:
        model = by_name.get(name)
        if model is None:
            raise ApiError(404, f"unknown model {name!r}", {"models": list(by_name)})
        return model

    error_responses: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorBody, "description": text}
        for code, text in (
            (400, "empty, corrupt or malformed upload"),
            (404, "unknown model"),
            (413, "upload or image too large"),
            (415, "not an image, or a format that is not accepted"),
            (422, "bad option"),
            (503, "queue full (see Retry-After) or shutting down"),
        )
    }
    binary = {"schema": {"type": "string", "format": "binary"}}

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
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "the image, as the raw body or a multipart field 'image' "
                "(other multipart fields are model options)",
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {"image": {"type": "string", "format": "binary"}},
                            "required": ["image"],
                        }
                    },
                    "image/*": binary,
                    "application/octet-stream": binary,
                },
            }
        },
    )
    async def translate_image(
        request: Request,
        name: str,
        format: Annotated[  # the query parameter's public name
            str | None, Query(description="png (default), jpeg or webp; or send Accept")
        ] = None,
        tile_size: Annotated[
            int | None,
            Query(ge=0, description="tile side for large images (0: never tile); model default"),
        ] = None,
        tile_overlap: Annotated[
            int | None, Query(ge=0, description="overlap of tiles; a quarter of the tile")
        ] = None,
    ) -> Response:
        """Any other query parameter (or multipart field) is one of the model's options, e.g.
        ``direction=b2a`` for CycleGAN; ``GET /v1/models`` lists them."""
        started = time.perf_counter()
        model = lookup(name)
        fmt = _output_format(format, request.headers.get("accept", ""))
        options = {
            k.replace("-", "_"): v
            for k, v in request.query_params.items()
            if k.replace("-", "_") not in RESERVED
        }
        tiling = None
        if tile_size is not None or tile_overlap is not None:
            tile = tile_size if tile_size is not None else model.translator.tile_size
            tiling = (tile, tile_overlap)
            model.translator.with_tiling(*tiling)  # refuses a tile the model cannot take
        body = await _read_body(request, config.max_upload_bytes)
        data, fields = await _split_upload(request, body)
        options = {**{k.replace("-", "_"): v for k, v in fields.items()}, **options}
        opts = model.parse_options(options)
        model.check_options(opts)
        header = check_header(
            data, formats=config.formats, max_pixels=config.max_pixels, scale=model.scale
        )
        pool: InferencePool | None = request.app.state.pool
        if pool is None:
            raise PoolClosed("the server is not ready")
        future = pool.submit(BatchKey(model.name, opts, tiling, header.size), Work(data, fmt))
        done = await asyncio.wrap_future(future)
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
                "Content-Disposition": f'inline; filename="{model.name}.{fmt}"',
            },
        )

    # ------------------------------------------------------------------ listing, health
    @app.get("/v1/models", summary="Served models, their options and limits")
    async def list_models() -> dict[str, Any]:
        limits = dict(
            max_pixels=config.max_pixels,
            max_upload_bytes=config.max_upload_bytes,
            formats=list(config.formats),
        )
        return {"models": [m.describe(**limits) for m in by_name.values()]}

    @app.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        summary="Readiness: models loaded and the pool takes work (503 otherwise)",
        responses={503: {"model": ErrorBody}},
    )
    async def readyz(request: Request) -> Any:
        pool: InferencePool | None = request.app.state.pool
        if pool is None or pool.closed:
            return _error(503, "not ready", pool.stats() if pool else None)
        return {"status": "ready", "models": list(by_name), **pool.stats()}

    # ------------------------------------------------------------------ web page
    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
