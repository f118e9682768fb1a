"""Opening a model on a backend: what ``Translator`` and sampling run.

``load(path, backend=...)`` reads any model ``translate.loading`` reads; with
``backend="onnx"`` a PyTorch model becomes its cached ONNX export (``translate.export.cache``).
It sits above both loading and export, so loading never imports the exporter.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from translate.errors import ConfigError
from translate.export.cache import as_onnx
from translate.loading import LoadedModel, LoadedOnnx, is_onnx_file, load_module, load_onnx

__all__ = ["BACKENDS", "load"]

BACKENDS = ("torch", "onnx")


def load(
    path: Path | str,
    *,
    options: Mapping[str, Any] | None = None,
    device: str = "cpu",
    backend: str | None = None,
    fp16: bool = False,
) -> LoadedModel | LoadedOnnx:
    """Load ``path`` for inference on ``backend`` (None: what the file is; ``torch`` or
    ``onnx``). ``device`` places a PyTorch module; ``fp16`` selects a half-precision ONNX
    export when a PyTorch model is run on ``onnx``."""
    if backend not in (None, *BACKENDS):
        raise ConfigError(f"backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    if is_onnx_file(path):
        if backend not in (None, "onnx"):
            raise ConfigError(f"{path}: an ONNX model runs on --backend onnx, not {backend}")
        return load_onnx(path, options=options)
    if backend != "onnx":
        if fp16:
            raise ConfigError("fp16: selects a half-precision ONNX export; use --amp with torch")
        return load_module(path, options=options, device=device)
    return as_onnx(load_module(path, options=options, device="cpu"), fp16=fp16)
