"""``translate serve``: the HTTP service (``translate.serve``) over the command line;
registered on the app in ``translate.cli.main``."""

from __future__ import annotations

from typing import Annotated

import typer

from translate.cli.errors import report_errors
from translate.config_train import AMP_HELP, DEFAULT_AMP
from translate.fields import INT_MAX


@report_errors
def serve_command(
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model", "-m", metavar="<name>", help="A shipped model by name (repeatable)."
        ),
    ] = None,
    checkpoint: Annotated[
        list[str] | None,
        typer.Option(
            "--checkpoint",
            "-c",
            metavar="<[name=]path>",
            help="[NAME=]PATH: a run or checkpoint folder, or a weights file as for "
            "translate run (repeatable); served as NAME, else under its plugin's name.",
        ),
    ] = None,
    onnx: Annotated[
        list[str] | None,
        typer.Option(
            metavar="<[name=]file>",
            help="[NAME=]FILE: an .onnx file from translate export (repeatable).",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = 8000,
    backend: Annotated[
        str | None, typer.Option(help="torch or onnx, as for translate run. [default: torch]")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda (onnx also: tensorrt).")] = "auto",
    amp: Annotated[str, typer.Option(help=AMP_HELP)] = DEFAULT_AMP,
    tile_size: Annotated[
        int | None,
        typer.Option(
            help="Default tile side (0: never tile); requests may ask for their own. "
            "[default: 1024-pixel tiles above 1 megapixel]",
            show_default=False,
            min=0,
            max=INT_MAX,
        ),
    ] = None,
    tile_overlap: Annotated[
        int | None,
        typer.Option(help="Overlap of tiles. [default: a quarter of the tile]", min=0, max=INT_MAX),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(help="Intra-op threads (torch and ONNX Runtime).", min=0, max=INT_MAX),
    ] = None,
    workers: Annotated[int, typer.Option(help="Inference worker threads.", min=1, max=INT_MAX)] = 1,
    queue_size: Annotated[
        int,
        typer.Option(help="Requests that may wait for a worker; more get 503.", min=0, max=INT_MAX),
    ] = 16,
    max_batch: Annotated[
        int,
        typer.Option(help="Same-size queued requests translated together.", min=1, max=INT_MAX),
    ] = 4,
    max_upload_mb: Annotated[float, typer.Option(help="Largest request body in MB.")] = 20.0,
    max_pixels: Annotated[
        int,
        typer.Option(
            help="Largest image in pixels (output size: input x scale^2).", min=1, max=INT_MAX
        ),
    ] = 4096 * 4096,
    max_memory: Annotated[
        str | None,
        typer.Option(
            help="Bound on the server's memory (e.g. 4G): models and runtime, plus a budget "
            "that requests in flight share (over it they wait in the queue); +SIZE (e.g. "
            "+1G): that budget on top of what the models take. "
            "[default: half the machine's memory]",
            show_default=False,
        ),
    ] = None,
    read_timeout: Annotated[
        float, typer.Option(help="Seconds to receive request headers, and again the body.")
    ] = 15.0,
    request_timeout: Annotated[
        float, typer.Option(help="Deadline for a whole request (upload, queue, inference).")
    ] = 120.0,
    cancel_grace: Annotated[
        float,
        typer.Option(
            help="Seconds a job may run on after its requests gave up before its worker "
            "counts as stuck (/readyz 503, another worker started); also shutdown's wait."
        ),
    ] = 5.0,
    max_connections: Annotated[
        int,
        typer.Option(help="Concurrent connections and requests; more get 503.", min=1, max=INT_MAX),
    ] = 256,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="TRANSLATE_API_KEY",
            help="Bearer token the API requires (env TRANSLATE_API_KEY); /healthz, the page and "
            "/docs stay open.",
            show_default=False,
        ),
    ] = None,
    allow_unauthenticated: Annotated[
        bool,
        typer.Option(help="Allow listening beyond loopback (--host) without an API key."),
    ] = False,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(
            metavar="<url>", help="An origin allowed to call the API from a browser (repeatable)."
        ),
    ] = None,
    access_log: Annotated[bool, typer.Option(help="One JSON log line per request.")] = True,
    max_samples: Annotated[
        int,
        typer.Option(
            help="Most images one GET /v1/models/NAME/sample may draw (dcgan, cgan).",
            min=1,
            max=INT_MAX,
        ),
    ] = 64,
) -> None:
    """Serve models over HTTP: POST /v1/models/NAME/translate (GET .../sample for generating
    models), a web page at /, /docs."""
    from translate.serve import LoadSettings, ServeConfig, require_extra

    require_extra()
    from translate.serve.budget import parse_bytes
    from translate.serve.server import serve

    serve(
        model or [],
        checkpoint or [],
        onnx or [],
        host=host,
        port=port,
        settings=LoadSettings(
            backend=backend,
            device=device,
            amp=amp,
            tile_size=tile_size,
            tile_overlap=tile_overlap,
            batch_size=max_batch,
            threads=threads,
        ),
        config=ServeConfig(
            max_upload_bytes=int(max_upload_mb * 1024 * 1024),
            max_pixels=max_pixels,
            workers=workers,
            queue_size=queue_size,
            max_batch=max_batch,
            read_timeout=read_timeout,
            request_timeout=request_timeout,
            cancel_grace=cancel_grace,
            max_connections=max_connections,
            api_key=api_key or None,
            cors_origins=tuple(cors_origin or ()),
            access_log=access_log,
            max_samples=max_samples,
        ),
        max_memory=parse_bytes(max_memory) if max_memory and max_memory[0] != "+" else None,
        memory_headroom=parse_bytes(max_memory[1:])
        if max_memory and max_memory[0] == "+"
        else None,
        allow_unauthenticated=allow_unauthenticated,
    )
