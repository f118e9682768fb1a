"""Load the served models and run uvicorn: what ``translate serve`` calls."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from translate.errors import ConfigError
from translate.serve.config import ServeConfig, name_sources, parse_sources
from translate.serve.models import LoadSettings, ServedModel, load_translator

log = logging.getLogger(__name__)


def load_models(
    models: Sequence[str] = (),
    checkpoints: Sequence[str] = (),
    onnx: Sequence[str] = (),
    settings: LoadSettings | None = None,
) -> list[ServedModel]:
    """Shipped ``models`` by name, ``checkpoints`` (``[NAME=]PATH``: a run or checkpoint
    folder) and ``onnx`` files (``[NAME=]FILE``), loaded for serving; none given: the shipped
    default model. A source without a name is served under its plugin's name."""
    settings = settings or LoadSettings()
    parsed = parse_sources(list(models), list(checkpoints), list(onnx))
    if not parsed:
        from translate.shipped import DEFAULT_MODEL

        parsed = [(DEFAULT_MODEL, "model", DEFAULT_MODEL)]
    translators = [load_translator(kind, where, settings) for _, kind, where in parsed]
    sources = name_sources(parsed, [str(t.meta["plugin"]) for t in translators])
    return [ServedModel(s, t, settings) for s, t in zip(sources, translators, strict=True)]


def serve(
    models: Sequence[str] = (),
    checkpoints: Sequence[str] = (),
    onnx: Sequence[str] = (),
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: LoadSettings | None = None,
    config: ServeConfig | None = None,
    log_level: str = "info",
    access_log: bool = True,
    graceful_timeout: float | None = None,
) -> None:
    """Serve the models over HTTP until SIGINT/SIGTERM; in-flight requests are finished
    (for at most ``graceful_timeout`` seconds when given) before the process exits."""
    try:
        import uvicorn

        from translate.serve.app import create_app
    except ImportError as exc:
        raise ConfigError(
            f"serve: {exc.name} is not installed; pip install 'translate[serve]'"
        ) from exc
    from PIL import Image

    config = config or ServeConfig()
    # PIL refuses images above twice its limit while opening; ours (checked from the header)
    # is the one that applies, so PIL's must not be lower
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, config.max_pixels)
    served = load_models(models, checkpoints, onnx, settings)
    for model in served:
        print(f"model {model.name}: {model.translator.describe()}", file=sys.stderr)
    app = create_app(served, config)
    print(f"serving on http://{host}:{port}/ (API: /v1/models, /docs)", file=sys.stderr)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            access_log=access_log,
            lifespan="on",
            timeout_graceful_shutdown=graceful_timeout,
        )
    )
    try:
        server.run()
    except SystemExit:
        if not server.started:  # e.g. the port is taken: uvicorn has logged why
            raise ConfigError(f"--port {port}: could not start the server on {host}") from None
        raise
