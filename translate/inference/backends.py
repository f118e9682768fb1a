"""Inference backends: one call, CPU tensor in, CPU tensor out, on PyTorch or ONNX Runtime.

Both take a (B, C, H, W) float32 CPU tensor that already has a size the module accepts (and,
for a model with conditioning inputs, one (B, size) float32 vector per input after it) and
return (B, C', H * scale, W * scale) float32 on the CPU. Everything else (pre- and
post-processing, padding, tiling, batching) lives in ``Translator``, so the two backends give
the same outputs within export tolerance. Both are safe to call from several threads at once
(a server holds one ``Translator``): a torch module in eval mode under ``inference_mode`` keeps
no state between calls, and ``InferenceSession.run`` is thread-safe.

ONNX Runtime providers are chosen by what the machine has, not by what the installed wheel
lists: onnxruntime-gpu lists CUDA and TensorRT on any machine, and asking for them without a
GPU prints CUDA errors. TensorRT (with shape profiles and an engine cache) > CUDA > CPU.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import importlib.util
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from translate.engine.device import inference_precision, precision_context
from translate.errors import CheckpointError, ConfigError
from translate.loading.ort import CPU, CUDA, TRT, cuda_device_present, session_options

__all__ = [
    "CPU",
    "CUDA",
    "TRT",
    "OnnxBackend",
    "TorchBackend",
    "TrtProfile",
    "cuda_device_present",
    "select_providers",
    "session_options",
    "tensorrt_present",
]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- torch
class TorchBackend:
    """An ``nn.Module`` on a device, in the precision ``inference_precision(amp)`` picks (fp32
    unless asked otherwise: ``translate.inference.precision``). The module
    and its inputs are channels-last, the layout oneDNN's and cuDNN's fast convolutions use."""

    kind = "torch"
    max_side: int | None = None
    max_batch: int | None = None

    def __init__(self, module: nn.Module, device: torch.device, *, amp: str | None = None) -> None:
        self.module = module.to(memory_format=torch.channels_last)
        self.device = device
        self.amp = inference_precision(amp, device)

    @property
    def providers(self) -> list[str]:
        return [str(self.device)]

    def __call__(self, x: Tensor, *conditions: Tensor) -> Tensor:
        # (B, C, H, W) float32 CPU [, (B, size) per condition] -> (B, C', H*s, W*s) float32 CPU
        with torch.inference_mode():
            x = x.to(self.device, non_blocking=True)
            if x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            extra = [c.to(self.device, non_blocking=True) for c in conditions]
            with precision_context(self.amp, self.device):
                y = self.module(x, *extra)
            return y.float().cpu()

    def describe(self) -> str:
        suffix = f", {self.amp} autocast" if self.amp != "none" else ""
        return f"torch on {self.device}{suffix}"


# ---------------------------------------------------------------------------- providers
def tensorrt_present() -> bool:
    """Whether the TensorRT libraries that ORT's TensorRT provider loads can be found."""
    return importlib.util.find_spec("tensorrt") is not None or bool(
        ctypes.util.find_library("nvinfer")
    )


@dataclass(frozen=True)
class TrtProfile:
    """TensorRT optimisation profile: input shapes from (min) to (max), tuned for (opt)."""

    channels: int
    min_side: int
    opt_side: int
    max_side: int
    max_batch: int = 1
    #: (name, size) of each conditioning input: (batch, size), batch as the image's
    conditions: tuple[tuple[str, int], ...] = ()

    def shapes(self, input_name: str) -> dict[str, str]:
        def shape(batch: int, side: int) -> str:
            extra = "".join(f",{name}:{batch}x{size}" for name, size in self.conditions)
            return f"{input_name}:{batch}x{self.channels}x{side}x{side}{extra}"

        return {
            "trt_profile_min_shapes": shape(1, self.min_side),
            "trt_profile_opt_shapes": shape(self.max_batch, self.opt_side),
            "trt_profile_max_shapes": shape(self.max_batch, self.max_side),
        }


def select_providers(
    device: str = "auto",
    *,
    input_name: str = "input",
    profile: TrtProfile | None = None,
    cache_dir: Path | None = None,
    fp16: bool = False,
    available: Sequence[str] | None = None,
    cuda: bool | None = None,
    tensorrt: bool | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """ONNX Runtime providers with options, best first, for this machine.

    ``device``: auto (TensorRT > CUDA > CPU by what exists), cpu, cuda (CUDA, no TensorRT) or
    tensorrt. ``available``, ``cuda`` and ``tensorrt`` override detection (tests).
    """
    if device not in ("auto", "cpu", "cuda", "tensorrt"):
        raise ConfigError(f"device: {device!r} is not one of auto, cpu, cuda, tensorrt")
    if available is None:
        import onnxruntime as ort

        available = ort.get_available_providers()
    has_cuda = cuda_device_present() if cuda is None else cuda
    if device in ("cuda", "tensorrt") and not has_cuda:
        raise ConfigError(f"device: {device} requested but no CUDA device is available")
    if device in ("cuda", "tensorrt") and CUDA not in available:
        raise ConfigError(
            f"device: {device} requested but this onnxruntime has no CUDA provider "
            "(install onnxruntime-gpu)"
        )
    chosen: list[tuple[str, dict[str, Any]]] = []
    if device != "cpu" and has_cuda and CUDA in available:
        has_trt = (tensorrt_present() if tensorrt is None else tensorrt) and TRT in available
        if device == "tensorrt" and not has_trt:
            raise ConfigError("device: tensorrt requested but TensorRT is not installed")
        if has_trt and device in ("auto", "tensorrt"):
            opts: dict[str, Any] = {"device_id": 0, "trt_fp16_enable": fp16}
            if cache_dir is not None:
                opts |= {
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(cache_dir),
                    "trt_timing_cache_enable": True,
                    "trt_timing_cache_path": str(cache_dir),
                }
            if profile is not None:
                opts |= profile.shapes(input_name)
            chosen.append((TRT, opts))
        chosen.append((CUDA, {"device_id": 0, "arena_extend_strategy": "kSameAsRequested"}))
    chosen.append((CPU, {}))
    return chosen


# ---------------------------------------------------------------------------- onnx
class OnnxBackend:
    """An ONNX Runtime session over an exported model (fp32 inputs and outputs)."""

    kind = "onnx"

    def __init__(
        self,
        path: Path,
        *,
        device: str = "auto",
        threads: int | None = None,
        profile: TrtProfile | None = None,
        fp16: bool = False,
        conditions: int = 0,
    ) -> None:
        """``conditions``: how many conditioning inputs follow the image (or latent)."""
        import onnxruntime as ort

        self.path = Path(path)
        providers = select_providers(
            device,
            profile=profile,
            cache_dir=self.path.parent / f"{self.path.stem}.trt-cache",
            fp16=fp16,
        )
        names = [p for p, _ in providers]
        if CUDA in names and hasattr(ort, "preload_dlls"):
            with contextlib.suppress(Exception):  # CUDA/cuDNN from pip wheels (as torch does)
                ort.preload_dlls()
        if TRT in names:
            os.makedirs(self.path.parent / f"{self.path.stem}.trt-cache", exist_ok=True)
        try:
            self.session = ort.InferenceSession(
                str(self.path),
                sess_options=session_options(threads),
                providers=[p for p, _ in providers],
                provider_options=[o for _, o in providers],
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise CheckpointError(
                f"{self.path}: cannot load in ONNX Runtime ({_first_line(exc)})"
            ) from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 + conditions or len(outputs) != 1:
            raise CheckpointError(
                f"{self.path}: expected {1 + conditions} input(s) and one output, found "
                f"{len(inputs)} and {len(outputs)}"
            )
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        self.condition_names = [i.name for i in inputs[1:]]
        self.input_dtype = np.float16 if "float16" in inputs[0].type else np.float32
        self.providers: list[str] = self.session.get_providers()
        self.device = "cuda" if self.providers[0] in (TRT, CUDA) else "cpu"
        self.profile = profile if self.providers[0] == TRT else None
        self.max_side = self.profile.max_side if self.profile else None
        self.max_batch = self.profile.max_batch if self.profile else None
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, x: Tensor, *conditions: Tensor) -> Tensor:
        # (B, C, H, W) float32 CPU [, (B, size) per condition] -> (B, C', H*s, W*s) float32 CPU
        feeds = {
            name: np.ascontiguousarray(t.detach().cpu().numpy(), dtype=self.input_dtype)
            for name, t in zip(
                [self.input_name, *self.condition_names], [x, *conditions], strict=True
            )
        }
        if self.device == "cuda":
            # IO binding: the output stays on the GPU until one copy back, no staging buffers
            binding = self.session.io_binding()
            for name, array in feeds.items():
                binding.bind_cpu_input(name, array)
            binding.bind_output(self.output_name, "cuda")
            self.session.run_with_iobinding(binding)
            out = binding.copy_outputs_to_cpu()[0]
        else:
            out = self.session.run([self.output_name], feeds)[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32))

    def describe(self) -> str:
        return f"onnxruntime ({', '.join(self.providers)})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
