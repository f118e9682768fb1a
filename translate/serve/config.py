"""What ``translate serve`` serves and how: model sources, limits and the worker pool.

No torch, FastAPI or uvicorn here: the CLI builds these before anything heavy is imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from translate.config import opt
from translate.errors import ConfigError

SourceKind = Literal["model", "checkpoint", "onnx"]

#: Input formats accepted by default (PIL format names). GIF and the rest are refused (415).
DEFAULT_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF")

#: Output formats: query value -> (PIL format, media type).
OUTPUT_FORMATS = {
    "png": ("PNG", "image/png"),
    "jpeg": ("JPEG", "image/jpeg"),
    "jpg": ("JPEG", "image/jpeg"),
    "webp": ("WEBP", "image/webp"),
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: What the OpenAPI schema's integer and number mean in a query string or a form field: plain
#: decimal text (no ``0.0`` or ``1_000`` for an integer, no ``inf`` or ``nan`` for a number).
INTEGER_TEXT = re.compile(r"-?[0-9]+")
NUMBER_TEXT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


@dataclass(frozen=True)
class ServeConfig:
    """Limits and the inference pool of the HTTP service."""

    max_upload_bytes: int = opt(20 * 1024 * 1024, "Largest request body in bytes (413 above).")
    max_pixels: int = opt(
        4096 * 4096,
        "Largest image in pixels, input or output (input x scale^2); checked from the header "
        "before decoding (413 above).",
    )
    formats: tuple[str, ...] = opt(DEFAULT_FORMATS, "Accepted input formats (PIL names; 415).")
    workers: int = opt(1, "Inference threads (each runs one batch at a time).")
    queue_size: int = opt(16, "Requests waiting for a worker; more are answered 503.")
    max_batch: int = opt(4, "Same-size queued requests translated together (1: no batching).")
    retry_after: int = opt(1, "Smallest Retry-After (seconds) on a 503 for a full queue.")
    read_timeout: float = opt(
        15.0,
        "Seconds a client may take to send its request headers, and again its body "
        "(408 and the connection closed after that).",
    )
    request_timeout: float = opt(
        120.0,
        "Deadline in seconds for a whole request (upload, queue, inference); 503 with "
        "Retry-After when it passes.",
    )
    cancel_grace: float = opt(
        5.0,
        "Seconds a job may run on after every request waiting for it gave up (deadline, "
        "client gone) before its worker counts as stuck: /readyz answers 503 and another "
        "worker takes its place. Also how long shutdown waits for running jobs.",
    )
    max_connections: int = opt(
        256, "Concurrent connections and requests; more are answered 503 at once."
    )
    api_key: str | None = field(
        default=None,
        repr=False,  # never in logs
        metadata={
            "help": "Bearer token the API requires (401 otherwise); /healthz, the page and "
            "/docs stay open."
        },
    )
    cors_origins: tuple[str, ...] = opt((), "Origins allowed to call the API from a browser.")
    access_log: bool = opt(True, "One JSON access-log line per request.")
    max_samples: int = opt(
        64, "Most images one request may draw from a generating model (/v1/models/NAME/sample)."
    )

    def __post_init__(self) -> None:
        for name in (
            "max_upload_bytes",
            "max_pixels",
            "workers",
            "queue_size",
            "max_batch",
            "max_connections",
            "max_samples",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be at least 1, got {getattr(self, name)}")
        for name in ("read_timeout", "request_timeout", "cancel_grace"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}: must be positive, got {getattr(self, name)}")
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("api_key: must not be empty")
        if self.retry_after < 0:
            raise ConfigError(f"retry_after: must not be negative, got {self.retry_after}")
        if not self.formats:
            raise ConfigError("formats: at least one input format is needed")
        object.__setattr__(self, "formats", tuple(f.upper() for f in self.formats))


@dataclass(frozen=True)
class ModelSource:
    """One served model: a shipped model name, a checkpoint (or run) folder, or an .onnx file,
    under the name it has in the URL (``/v1/models/{name}/translate``)."""

    name: str
    kind: SourceKind
    location: str = field(default="")  # the shipped name, or the path

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(
                f"model name {self.name!r}: use letters, digits, '.', '_' or '-' (at most 64)"
            )


def parse_sources(
    models: list[str], checkpoints: list[str], onnx: list[str]
) -> list[tuple[str | None, SourceKind, str]]:
    """``--model NAME``, ``--checkpoint [NAME=]PATH``, ``--onnx [NAME=]FILE`` -> (name or None,
    kind, location); a name left out is chosen when the model is loaded (its plugin's name)."""
    parsed: list[tuple[str | None, SourceKind, str]] = [(m, "model", m) for m in models]
    for kind, values in (("checkpoint", checkpoints), ("onnx", onnx)):
        for value in values:
            name, sep, path = value.partition("=")
            if not sep or Path(value).exists():  # a path that itself contains '='
                name, path = "", value
            if kind == "onnx" and not Path(path).is_file():
                raise ConfigError(f"--onnx {path}: no such file")
            parsed.append((name or None, kind, path))  # type: ignore[arg-type]
    return parsed


def name_sources(
    parsed: list[tuple[str | None, SourceKind, str]], plugins: list[str]
) -> list[ModelSource]:
    """Give every source a unique URL name: its own, or its plugin's (``pix2pix``,
    ``pix2pix-2``, ...). Two sources given the same name is an error."""
    given = [name for name, _, _ in parsed if name]
    dup = next((n for n in given if given.count(n) > 1), None)
    if dup:
        raise ConfigError(f"model name {dup!r} is given twice")
    taken = set(given)
    out: list[ModelSource] = []
    for (name, kind, location), plugin in zip(parsed, plugins, strict=True):
        if name is None:
            name, n = plugin, 1
            while name in taken:
                n += 1
                name = f"{plugin}-{n}"
        taken.add(name)
        out.append(ModelSource(name, kind, location))
    return out
