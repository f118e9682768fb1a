"""``translate compress --report``: what a compressed model saves against its dense parent.

For the dense parent (from the compressed checkpoint's ``compressed_from`` record) and the
compressed model: parameters of the inference module, GFLOPs per image (counted by
``torch.utils.flop_counter.FlopCounterMode``: 2 per multiply-accumulate, convolutions and matrix
products), the size of the ONNX export (``translate export``, parity-checked) and the median
latency of one image in PyTorch and in ONNX Runtime on the CPU; with ``eval_data``, the plugin's
evaluation protocol (``translate eval``: pix2pix L1, PSNR, SSIM, ...) on that folder for both.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from translate.engine import checkpoint as ckpt
from translate.errors import ConfigError


@dataclass(frozen=True)
class ModelCost:
    """The deployment cost of one model at one image size."""

    name: str
    path: Path
    params: int
    gflops: float  # per image
    onnx_bytes: int
    torch_ms: float  # median latency, batch 1
    ort_ms: float  # median latency, batch 1, ONNX Runtime on the CPU
    metrics: dict[str, float] = field(default_factory=dict)  # the plugin's eval protocol


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (allocations, kernels chosen)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def measure(
    path: Path, name: str, *, size: int, repeats: int, eval_data: Path | None = None
) -> ModelCost:
    """Parameters, GFLOPs, ONNX size and latencies of the checkpoint at ``path`` (and its
    evaluation metrics on ``eval_data``)."""
    import onnxruntime as ort

    from translate.export.onnx import export_loaded
    from translate.loading import load_module

    loaded = load_module(path, device="cpu")
    module: nn.Module = loaded.module
    req = loaded.requirements
    side = max(req.minimum, -(-size // req.multiple_of) * req.multiple_of)
    x = torch.rand(1, loaded.in_channels, side, side) * 2 - 1
    params = sum(p.numel() for p in module.parameters())
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            module(x)
        torch_ms = _median_ms(lambda: module(x), repeats)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        export_loaded(loaded, onnx_path)
        onnx_bytes = onnx_path.stat().st_size + sum(
            p.stat().st_size for p in Path(tmp).iterdir() if p != onnx_path
        )
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: x.numpy()}
        ort_ms = _median_ms(lambda: session.run(None, feed), repeats)
    metrics: dict[str, float] = {}
    if eval_data is not None:
        from translate.evaluation import evaluate

        result = evaluate(loaded.plugin.name, [eval_data], checkpoint=path, device="cpu")
        metrics = result.results[0].means
    flops = counter.get_total_flops() / 1e9
    return ModelCost(name, path, params, flops, onnx_bytes, torch_ms, ort_ms, metrics)


def compression_report(
    compressed: Path | str, *, size: int = 256, repeats: int = 5, eval_data: Path | None = None
) -> list[ModelCost]:
    """Dense parent vs compressed model (``[dense, compressed]``) at ``size`` x ``size``, with
    the plugin's evaluation metrics on ``eval_data`` when given.

    Raises:
        ConfigError: ``compressed`` records no parent (not made by ``translate compress``) or
            its parent is gone.
    """
    folder = ckpt.resolve_checkpoint(Path(compressed))
    record = ckpt.read_meta(folder).get("compressed_from")
    if not record:
        raise ConfigError(f"{folder}: not a compressed model (no compressed_from in meta.json)")
    parent = Path(record["parent"])
    if not parent.exists():
        raise ConfigError(f"{folder}: its dense parent {parent} no longer exists")
    return [
        measure(parent, "dense", size=size, repeats=repeats, eval_data=eval_data),
        measure(
            folder, f"keep {record.get('keep')}", size=size, repeats=repeats, eval_data=eval_data
        ),
    ]


def format_report(rows: list[ModelCost]) -> str:
    """A plain-text table, one row per model, with ratios to the first (dense) row."""
    head = f"{'model':12} {'params':>12} {'GFLOPs':>9} {'ONNX MB':>9} {'torch ms':>9} {'ORT ms':>9}"
    lines = [head]
    base = rows[0]
    for r in rows:
        lines.append(
            f"{r.name:12} {r.params:12,d} {r.gflops:9.3f} {r.onnx_bytes / 1e6:9.2f} "
            f"{r.torch_ms:9.2f} {r.ort_ms:9.2f}"
        )
    for r in rows[1:]:
        lines.append(
            f"{r.name} / dense: params x{r.params / base.params:.3f}, "
            f"GFLOPs x{r.gflops / max(base.gflops, 1e-12):.3f}, "
            f"ONNX x{r.onnx_bytes / base.onnx_bytes:.3f}, "
            f"torch latency x{r.torch_ms / base.torch_ms:.2f}, "
            f"ORT latency x{r.ort_ms / base.ort_ms:.2f}"
        )
    for r in rows:
        if r.metrics:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in r.metrics.items())
            lines.append(f"{r.name} eval: {shown}")
    return "\n".join(lines)
