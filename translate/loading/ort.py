"""ONNX Runtime sessions as every caller makes them: the same options for running a model
(``translate.inference.backends``) and for checking an export against PyTorch
(``translate.export.onnx``), so a parity check measures what a run will do."""

from __future__ import annotations

from typing import Any

import torch

TRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def cuda_device_present() -> bool:
    """Whether a CUDA device really exists (not merely a CUDA build of a library)."""
    return torch.cuda.is_available()


def session_options(threads: int | None = None) -> Any:
    """Session options: full graph optimisation, quiet logs, ``threads`` intra-op threads
    (default: torch's thread count, so one setting governs both backends)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3  # errors only; no per-node placement warnings
    so.intra_op_num_threads = torch.get_num_threads() if threads is None else threads
    so.inter_op_num_threads = 1
    return so
