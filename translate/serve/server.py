"""Load the served models and run uvicorn: what ``translate serve`` calls.

Start-up: load every model and its choice variants, warm each up on a small image, price its
requests (``translate.serve.budget``), then measure the process's memory: that baseline
subtracted from ``--max-memory`` is the budget for work in flight. uvicorn runs with the
header read timeout (``translate.serve.protocol``) and ``--max-connections``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

from translate.errors import ConfigError
from translate.inference.sampling import Sampler
from translate.serve.budget import (
    RequestCost,
    current_rss,
    default_max_memory,
    format_bytes,
    split_budget,
)
from translate.serve.config import ServeConfig, name_sources, parse_sources
from translate.serve.models import LoadSettings, ServedModel, load_translator
from translate.serve.sampling import ServedGenerator, generates
from translate.serve.security import check_exposure

log = logging.getLogger(__name__)


def identify_source(kind: str, location: str) -> Any:
    """The ``ModelRef`` of a served source (a shipped model name is resolved to its folder),
    identified once: whether it generates and how it loads are read from it."""
    from translate.loading.identify import identify

    if kind == "onnx":
        from translate.loading.identify import is_onnx_file

        if not is_onnx_file(location):
            raise ConfigError(f"--onnx {location}: not an .onnx file")
    elif kind == "model":
        from translate.shipped import resolve_model

        location = str(resolve_model(location))
    return identify(location)


def load_sampler(ref: Any, device: str) -> Any:
    """A ``Sampler`` for an identified generating model (a checkpoint, or its ONNX export)."""
    return Sampler.from_checkpoint(ref, device=device)


def load_models(
    models: Sequence[str] = (),
    checkpoints: Sequence[str] = (),
    onnx: Sequence[str] = (),
    settings: LoadSettings | None = None,
) -> list[ServedModel | ServedGenerator]:
    """Shipped ``models`` by name, ``checkpoints`` (``[NAME=]PATH``: a run or checkpoint
    folder) and ``onnx`` files (``[NAME=]FILE``), loaded for serving; none given: the shipped
    default model. A source without a name is served under its plugin's name."""
    settings = settings or LoadSettings()
    parsed = parse_sources(list(models), list(checkpoints), list(onnx))
    if not parsed:
        from translate.shipped import DEFAULT_MODEL

        parsed = [(DEFAULT_MODEL, "model", DEFAULT_MODEL)]
    # a generating model (dcgan, cgan) is served for sampling, not translation
    refs = [(kind, identify_source(kind, where)) for _, kind, where in parsed]
    device = settings.device
    loaded = [
        load_sampler(ref, device) if generates(ref) else load_translator(kind, ref, settings)
        for kind, ref in refs
    ]
    metas = [x.loaded.meta if isinstance(x, Sampler) else x.meta for x in loaded]
    sources = name_sources(parsed, [str(meta["plugin"]) for meta in metas])
    served: list[ServedModel | ServedGenerator] = []
    for source, (_, ref), x in zip(sources, refs, loaded, strict=True):
        if isinstance(x, Sampler):
            served.append(ServedGenerator(source, x))
        else:
            served.append(ServedModel(source, x, settings, ref=ref))
            served[-1].preload_variants()  # type: ignore[union-attr]
    return served


def warm_up(model: ServedModel) -> None:
    """Run the model (and its preloaded variants) once on a small image and price its
    requests: the first request is not slow, and the baseline memory includes the runtime's
    first-run allocations."""
    from PIL import Image

    from translate.inference.tiling import padded_size

    t = model.translator
    side = padded_size(max(t.requirements.minimum, t.requirements.multiple_of), t.requirements)
    for translator in (t, *model.preloaded()):
        translator([Image.new("RGB", (side, side), (127, 127, 127))])
    model.cost = RequestCost.of(t)


def work_budget(max_memory: int) -> tuple[int, int]:
    """(baseline, budget): the process's resident memory now, and what ``max_memory`` leaves
    for work; a ``ConfigError`` when nothing is left."""
    baseline = current_rss() or 0
    budget = max_memory - baseline
    if budget < 64 * 1024 * 1024:
        raise ConfigError(
            f"--max-memory {format_bytes(max_memory)}: the loaded models and the runtime "
            f"already take {format_bytes(baseline)}; allow more"
        )
    return baseline, budget


def serve(
    models: Sequence[str] = (),
    checkpoints: Sequence[str] = (),
    onnx: Sequence[str] = (),
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: LoadSettings | None = None,
    config: ServeConfig | None = None,
    max_memory: int | None = None,
    memory_headroom: int | None = None,
    allow_unauthenticated: bool = False,
    log_level: str = "info",
    graceful_timeout: float | None = None,
) -> None:
    """Serve the models over HTTP until SIGINT/SIGTERM; in-flight requests are finished
    (for at most ``graceful_timeout`` seconds when given) before the process exits.
    ``max_memory``: the bound on the process's resident memory (None: half the machine's);
    ``memory_headroom`` instead: the budget for work on top of what the loaded models take."""
    config = config or ServeConfig()
    check_exposure(host, config.api_key, allow_unauthenticated)  # before anything loads
    try:
        import uvicorn

        from translate.serve.app import create_app
        from translate.serve.protocol import header_timeout_protocol
    except ImportError as exc:
        raise ConfigError(
            f"serve: {exc.name} is not installed; pip install 'translate[serve]'"
        ) from exc
    from PIL import Image

    logging.getLogger("translate.serve").setLevel(log_level.upper())
    # PIL refuses images above twice its limit while opening; ours (checked from the header)
    # is the one that applies, so PIL's must not be lower
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, config.max_pixels)
    loaded = load_models(models, checkpoints, onnx, settings)
    served = [m for m in loaded if isinstance(m, ServedModel)]
    generators = [m for m in loaded if isinstance(m, ServedGenerator)]
    for model in served:
        warm_up(model)
        variants = len(model.preloaded())
        extra = f" (+{variants} option variants)" if variants else ""
        print(f"model {model.name}: {model.translator.describe()}{extra}", file=sys.stderr)
    for generator in generators:
        generator.warm_up()
        print(
            f"model {generator.name}: {generator.plugin_name} generator, sampled at "
            f"/v1/models/{generator.name}/sample (at most {config.max_samples} per request)",
            file=sys.stderr,
        )
    if memory_headroom is not None:
        baseline = current_rss() or 0
        max_memory, budget = baseline + memory_headroom, memory_headroom
    else:
        max_memory = max_memory or default_max_memory()
        baseline, budget = work_budget(max_memory)
    uploads, work = split_budget(budget)
    largest = max(
        [m.cost.bytes(*_largest_input(config.max_pixels, m.scale)) for m in served if m.cost]
        + [g.price(config.max_samples) for g in generators]
    )
    print(
        f"memory: at most {format_bytes(max_memory)} (--max-memory): "
        f"{format_bytes(baseline)} models and runtime, {format_bytes(uploads)} for uploads, "
        f"{format_bytes(work)} for running work; the largest image allowed needs "
        f"{format_bytes(largest)}"
        + (" (over the budget: such images get 413)" if largest > work else ""),
        file=sys.stderr,
    )
    app = create_app(served, config, memory_budget=budget, generators=generators)
    print(f"serving on http://{host}:{port}/ (API: /v1/models, /docs)", file=sys.stderr)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            access_log=False,  # the app logs one structured line per request instead
            lifespan="on",
            http=header_timeout_protocol(config.read_timeout),
            limit_concurrency=config.max_connections,
            timeout_graceful_shutdown=graceful_timeout,
        )
    )
    try:
        server.run()
    except SystemExit:
        if not server.started:  # e.g. the port is taken: uvicorn has logged why
            raise ConfigError(f"--port {port}: could not start the server on {host}") from None
        raise


def _largest_input(max_pixels: int, scale: int) -> tuple[int, int]:
    """A square input of the most pixels ``max_pixels`` allows a model of ``scale``."""
    side = int((max_pixels // (scale * scale)) ** 0.5)
    return side, side
