"""Export: a checkpoint to ONNX with metadata, checked against PyTorch in ONNX Runtime."""

from translate.export.onnx import (
    FP16_TOLERANCE,
    FP32_TOLERANCE,
    ExportError,
    ExportResult,
    export_onnx,
    read_metadata,
)

__all__ = [
    "FP16_TOLERANCE",
    "FP32_TOLERANCE",
    "ExportError",
    "ExportResult",
    "export_onnx",
    "read_metadata",
]
