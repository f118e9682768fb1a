"""DragGAN in the service: ``POST /v1/models/{name}/drag`` drags handle points of a style
generator's image (stylegan2) to their targets, streaming the image as the optimisation runs.

The body (JSON, checked by the schema: 422 naming the field) gives the start, ``seed`` (the
image of that seed, as ``translate drag --seed``) or ``latent`` (the w+ a previous drag ended
on, from its last line), the ``handles`` and ``targets`` (pixel x, y inside the image, as many
of each), an optional ``mask`` (an image, as a data URL or base64: white where the image may
change, the rest kept by DragGAN's mask term), ``steps`` and ``lr`` (as ``translate drag``).
With no points the answer is the start image alone: the web page's "Sample".

The answer is newline-delimited JSON (``application/x-ndjson``), one object a line: ``{"step",
"steps", "points", "image"}`` for the start (step 0) and after every step (the image a PNG data
URL, the points the tracked handles), then ``{"done": true, "arrived", "latent", ...}``, or
``{"error": "..."}`` when the drag failed or its deadline (``--request-timeout``) passed. The
drag runs in the inference pool like a translation (priced at ``DRAG_COST`` times one sample);
a client that closes the connection cancels it at its next layer, as any other job.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from translate.errors import ConfigError
from translate.fields import SEED_MAX
from translate.serve.config import ServeConfig
from translate.serve.images import ApiError
from translate.serve.pool import InferencePool, OverBudget, PoolClosed

__all__ = ["DragBody", "DragWork", "add_drag_route", "check", "editors_of", "run_drag"]

#: Most points and steps one request may ask for; the price of a drag in samples (the
#: backward pass keeps the activations of the forward one).
MAX_POINTS, MAX_STEPS, DRAG_COST = 16, 1000, 4
#: Most characters of an encoded mask or latent.
MAX_ENCODED = 4 * 1024 * 1024
NDJSON = "application/x-ndjson"

Point = Annotated[
    list[Annotated[float, Field(allow_inf_nan=False)]], Field(min_length=2, max_length=2)
]


class DragBody(BaseModel):
    """What to drag (the request body)."""

    model_config = ConfigDict(extra="forbid")

    seed: int | None = Field(None, ge=0, le=SEED_MAX, description="edit the image of this seed")
    latent: str | None = Field(
        None,
        max_length=MAX_ENCODED,
        description="or edit this w+ (base64 float32, the 'latent' of a drag's last line)",
    )
    handles: list[Point] = Field(
        default_factory=list, max_length=MAX_POINTS, description="handle points [x, y] (px)"
    )
    targets: list[Point] = Field(
        default_factory=list, max_length=MAX_POINTS, description="their targets, one each"
    )
    mask: str | None = Field(
        None,
        max_length=MAX_ENCODED,
        description="an image (data URL or base64): white where the image may change",
    )
    steps: int = Field(100, ge=1, le=MAX_STEPS, description="at most this many steps")
    lr: float = Field(2e-3, gt=0, le=1, allow_inf_nan=False, description="Adam step size")


@dataclass(frozen=True)
class DragJob:
    """A checked request: the start latent, points, mask."""

    latent: torch.Tensor  # (1, num_ws, w_dim)
    handles: torch.Tensor  # (N, 2)
    targets: torch.Tensor
    mask: torch.Tensor | None
    steps: int
    lr: float


@dataclass(frozen=True)
class DragWork:
    """A drag in the inference pool; ``emit`` sends a progress line (from the worker)."""

    model: str
    job: DragJob
    emit: Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class DragKey:
    model: str
    token: int  # unique: each drag runs as its own batch


_tokens = itertools.count()


def _decode64(text: str, field: str) -> bytes:
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{field}: not base64 (or a data URL)") from None


def editors_of(generators: Any) -> dict[str, Any]:
    """{name: StyleEditable} of the served generators that can be dragged (stylegan2 run in
    PyTorch); each of them lists ``drag`` (its limits) in ``GET /v1/models``."""
    from translate.inference.editing import StyleEditable, editable

    editors = {}
    for g in generators:
        try:
            gen = editable(g.sampler.loaded)
        except (ConfigError, AttributeError):  # an ONNX export, a plugin with no generator
            continue
        if isinstance(gen, StyleEditable):
            editors[g.name] = gen
            _warm_up(gen)
            limits = {"max_steps": MAX_STEPS, "max_points": MAX_POINTS}
            g.drag = {"resolution": gen.resolution, **limits}
    return editors


def _warm_up(gen: Any) -> None:
    """One drag step, so that the first request's is not slow (Adam's first step imports
    much of torch: 8 s on a busy 2-core machine, then 20 ms a step)."""
    from translate.inference.dragging import drag

    point = torch.zeros(1, 2)
    drag(gen, gen.map(gen.draw(0)), point, point + 1, steps=1)


def check(body: DragBody, gen: Any) -> DragJob:
    """The body against the model: one start, points inside the image, a readable mask."""
    R = gen.resolution
    if (body.seed is None) == (body.latent is None):
        raise ConfigError("give exactly one of seed and latent")
    if len(body.handles) != len(body.targets):
        n, m = len(body.handles), len(body.targets)
        raise ConfigError(f"handles/targets: {n} handles but {m} targets")
    for field, points in (("handles", body.handles), ("targets", body.targets)):
        for i, (x, y) in enumerate(points):
            if not (0 <= x <= R - 1 and 0 <= y <= R - 1):
                raise ConfigError(f"{field}[{i}]: ({x:g}, {y:g}) is outside the {R}x{R} image")
    w_dim = int(gen.G.mapping.w_dim)
    if body.latent is not None:
        raw = _decode64(body.latent, "latent")
        if len(raw) != gen.num_ws * w_dim * 4:
            raise ConfigError(f"latent: expected {gen.num_ws} x {w_dim} float32 (w+ of this model)")
        values = np.frombuffer(raw, "<f4").reshape(1, gen.num_ws, w_dim)
        if not np.isfinite(values).all():
            raise ConfigError("latent: holds values that are not finite")
        latent = torch.from_numpy(values.copy()).to(gen.device)
    else:
        latent = gen.map(gen.draw(int(body.seed)))  # type: ignore[arg-type]
    mask = None
    if body.mask is not None:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(_decode64(body.mask, "mask"))) as im:
                if im.width * im.height > 4096 * 4096:
                    raise ConfigError(f"mask: {im.width}x{im.height} is too large")
                small = im.convert("L").resize((R, R), Image.Resampling.NEAREST)
        except (UnidentifiedImageError, OSError):
            raise ConfigError("mask: not an image PIL can read") from None
        mask = torch.from_numpy(np.asarray(small) > 127).float()
    handles, targets = (torch.tensor(p).float().view(-1, 2) for p in (body.handles, body.targets))
    return DragJob(latent, handles, targets, mask, body.steps, body.lr)


def _png(image: torch.Tensor) -> str:
    from translate.inference.image_io import tensor_to_pil

    buf = io.BytesIO()
    tensor_to_pil(image.detach().cpu())[0].save(buf, "PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def run_drag(gen: Any, work: DragWork) -> dict[str, Any]:
    """In a worker: the start image (step 0), the drag emitting each step; the last line."""
    from translate.inference.dragging import drag

    job = work.job
    steps = job.steps if len(job.handles) else 0
    with torch.no_grad():
        start = gen.synthesize(job.latent).clamp(-1, 1)
    work.emit({"step": 0, "steps": steps, "points": job.handles.tolist(), "image": _png(start)})
    if not len(job.handles):
        final, points, taken, arrived = job.latent, job.handles, 0, True
    else:

        def step(done: int, image: torch.Tensor, points: torch.Tensor) -> None:
            event = {"step": done, "steps": steps, "points": points.tolist()}
            work.emit({**event, "image": _png(image)})

        result = drag(
            gen, job.latent, job.handles, job.targets,
            mask=job.mask, steps=steps, lr=job.lr, on_step=step,
        )  # fmt: skip
        final, points, taken, arrived = result.latent, result.points, result.steps, result.arrived
    with torch.no_grad():
        image = gen.synthesize(final).clamp(-1, 1)
    raw = final.detach().cpu().numpy().astype("<f4").tobytes()
    return {
        "done": True,
        "step": taken,
        "steps": steps,
        "arrived": arrived,
        "points": points.tolist(),
        "targets": job.targets.tolist(),
        "image": _png(image),
        "latent": base64.b64encode(raw).decode(),
    }


def _line(event: dict[str, Any]) -> bytes:
    return (json.dumps(event) + "\n").encode()


def add_drag_route(
    app: FastAPI,
    editors: Mapping[str, Any],
    known: list[str],
    config: ServeConfig,
    error_responses: Mapping[int | str, dict[str, Any]],
    price: Callable[[str], int],
) -> None:
    """Register ``POST /v1/models/{name}/drag`` for the style generators in ``editors``
    ({name: StyleEditable}); ``price(name)``: the bytes one sample of that model needs."""

    @app.post(
        "/v1/models/{name}/drag",
        summary="Drag points of a style generator's image (DragGAN), streamed step by step",
        response_class=StreamingResponse,
        responses={
            200: {
                "content": {NDJSON: {"schema": {"type": "string"}}},
                "description": "one JSON object a line: {step, steps, points, image} for the "
                "start and each step, then {done, arrived, points, image, latent} or {error}",
            },
            **error_responses,
        },
    )
    async def drag_points(request: Request, name: str, body: DragBody) -> StreamingResponse:
        started = time.perf_counter()
        gen = editors.get(name)
        if gen is None:
            if name in known:
                raise ApiError(404, f"model {name!r} is no style generator (stylegan2): no drag")
            raise ApiError(404, f"unknown model {name!r}", {"models": known})
        job = check(body, gen)
        pool: InferencePool | None = request.app.state.pool
        if pool is None:
            raise PoolClosed("the server is not ready")
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        def emit(event: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(lines.put_nowait, event)

        try:
            work = DragWork(name, job, emit)
            future = pool.submit(DragKey(name, next(_tokens)), work, cost=DRAG_COST * price(name))
        except OverBudget as exc:
            raise ApiError(
                413, f"a drag needs {exc.cost} bytes, over the memory budget ({exc.budget})",
                {"needs_bytes": exc.cost, "budget_bytes": exc.budget},
            ) from None  # fmt: skip
        deadline = started + config.request_timeout

        async def stream() -> AsyncIterator[bytes]:
            result = asyncio.wrap_future(future)
            try:
                while True:
                    get = asyncio.ensure_future(lines.get())
                    left = max(0.0, deadline - time.perf_counter())
                    done, _ = await asyncio.wait(
                        {get, result}, timeout=left, return_when=asyncio.FIRST_COMPLETED
                    )
                    if get in done:
                        yield _line(get.result())
                        continue
                    get.cancel()
                    if result not in done:
                        pool.give_up(future)
                        timeout = config.request_timeout
                        yield _line({"error": f"request deadline of {timeout:g} s passed"})
                        return
                    while not lines.empty():
                        yield _line(lines.get_nowait())
                    try:
                        yield _line(result.result().value)
                    except Exception as exc:  # the drag's error, as the stream's last line
                        message = str(exc) if isinstance(exc, ConfigError) else "drag failed"
                        yield _line({"error": message})
                    return
            finally:  # the client left (or the deadline passed): the drag stops
                if not future.done():
                    pool.give_up(future)

        return StreamingResponse(stream(), media_type=NDJSON, headers={"X-Model": name})
