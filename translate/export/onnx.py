"""``translate export``: a checkpoint (or run folder, weights file) to a parity-checked ONNX
file. The exporter itself is ``translate.loading.onnx_export`` (below loading's ONNX cache and
this module alike); this module loads the model and refuses options the export takes as inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from translate.conditioning import split_options
from translate.errors import ConfigError
from translate.loading import ModelRef, load_module
from translate.loading.companions import SIDE_GRAPHS, export_side_graphs
from translate.loading.onnx_export import (
    EXPORTERS,
    FP16_TOLERANCE,
    FP32_TOLERANCE,
    PRODUCER,
    REQUIRED_KEYS,
    ExportError,
    ExportResult,
    build_metadata,
    export_loaded,
    export_proto,
    exportable_module,
    read_metadata,
)

__all__ = [
    "EXPORTERS",
    "FP16_TOLERANCE",
    "FP32_TOLERANCE",
    "PRODUCER",
    "REQUIRED_KEYS",
    "SIDE_GRAPHS",
    "ExportError",
    "ExportResult",
    "build_metadata",
    "export_loaded",
    "export_onnx",
    "export_proto",
    "exportable_module",
    "read_metadata",
]


def export_onnx(
    checkpoint: Path | str | ModelRef,
    out: Path | str,
    *,
    options: dict[str, Any] | None = None,
    fp16: bool = False,
    opset: int | None = None,
    exporter: str = "dynamo",
    overwrite: bool = True,
) -> ExportResult:
    """Export a model (a checkpoint or run folder, or its ``ModelRef``) to ``out`` and check it
    against PyTorch. ``overwrite=False``: an ``OutputError`` before anything is written when
    ``out`` or a side graph it would write beside it (``model.encoder.onnx``) exists."""
    from translate.errors import refuse_existing

    loaded = load_module(checkpoint, options=options, device="cpu")
    sides = [side.path(out) for side in SIDE_GRAPHS if side.module_of(loaded) is not None]
    refuse_existing([Path(out), *sides], overwrite=overwrite)  # nothing written yet
    _, chosen = split_options(loaded.conditions, options or {})
    if chosen:
        key = next(iter(chosen))
        inputs = ", ".join(c.name for c in loaded.conditions)
        raise ConfigError(
            f"option --{key.replace('_', '-')}: the export takes it as an input ({inputs}), "
            "for every value; give it when running the .onnx file, not to export"
        )
    result = export_loaded(loaded, Path(out), fp16=fp16, opset=opset, exporter=exporter)
    # e.g. its reference or text encoder, each as its own graph beside it
    result.companions.extend(export_side_graphs(loaded, out, opset=opset))
    return result
