"""Device selection and what the device runs fast, shared by training and inference.

``resolve_device`` picks the device; ``resolve_amp`` turns ``--amp auto`` into the precision the
hardware runs natively; ``physical_cores`` is the default intra-op thread count;
``configure_device`` sets the backend switches that are safe for any model (cuDNN autotuning,
TF32 matrix products on CUDA).

Inference has one precision rule, ``inference_precision`` (with ``precision_context``), used
by ``translate run``, ``translate serve``, the Python API (``Translator``, ``Sampler``) and the
export's parity references. Its default is fp32 (``DEFAULT_AMP = "none"``): the same image gives
the same bytes through every way of running a model on one machine, and it is what an ONNX
export is checked against. Lower precision is an explicit opt-in (``--amp bf16|fp16|auto``):
faster where the hardware multiplies bf16 natively, with outputs that may differ from fp32 by a
grey level or two. Training keeps its own default (``--amp auto``, ``resolve_amp``); a model
trained in bf16 still runs in fp32.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import torch

from translate.config_train import AMP_HELP as AMP_HELP
from translate.config_train import DEFAULT_AMP, INFERENCE_AMP_MODES
from translate.errors import ConfigError

AMP_MODES = ("auto", "none", "bf16", "fp16")


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without one is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda requested but no CUDA device is available")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"device: {name!r} is not one of auto, cpu, cuda")
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX-512 BF16 or AMX), so that oneDNN's bf16
    convolutions are faster than fp32 ones. Without it bf16 is emulated and slower."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_amp(amp: str, device: torch.device) -> tuple[str, str]:
    """The precision ``amp`` means on ``device``, and why: ``(mode, reason)``.

    ``auto``: bf16 where the hardware runs it natively (CUDA compute capability >= 8.0; CPUs
    with AVX-512 BF16 or AMX), fp16 with a gradient scaler on older CUDA GPUs, fp32 otherwise.
    An explicit mode is checked: fp16 needs CUDA.
    """
    if amp not in AMP_MODES:
        raise ConfigError(f"amp: {amp!r} is not one of {', '.join(AMP_MODES)}")
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError("amp: fp16 needs a CUDA device; use --amp bf16 on CPU")
    if amp != "auto":
        return amp, "--amp " + amp
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return "bf16", f"auto: {name} has native bf16"
        return "fp16", f"auto: {name} has no native bf16; fp16 with a gradient scaler"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16", "auto: the CPU has AVX-512 BF16/AMX"
    return "none", f"auto: no native bf16 on {device.type}; fp32"


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads share one core's units, so a
    second thread per core slows convolutions down); at least 1."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    cpus = allowed or set(range(os.cpu_count() or 1))
    cores = set()
    for cpu in cpus:
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(siblings.read_text().strip())
        except OSError:
            cores.add(str(cpu))  # no topology (not Linux): count logical CPUs
    return max(1, len(cores))


def configure_device(device: torch.device, *, threads: int = 0) -> int:
    """Intra-op threads (``threads``; 0: ``$OMP_NUM_THREADS`` when set, else one per physical
    core) and, on CUDA, cuDNN autotuning (the shapes of a training run are fixed, so the fastest
    algorithm is found once) and TF32 matrix products on Ampere+. Returns the thread count."""
    if threads > 0:
        torch.set_num_threads(threads)
    elif not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(physical_cores())
    count = torch.get_num_threads()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return count


# ---------------------------------------------------------------------------- inference
#: Inference precision when none is asked for: fp32, deterministic and export-comparable.


def inference_precision(amp: str | None, device: torch.device) -> str:
    """The autocast mode (``none``, ``bf16`` or ``fp16``) that ``amp`` means on ``device``.

    ``None`` is the default (``DEFAULT_AMP``, fp32). ``auto`` is bf16 where the hardware runs
    it natively (``resolve_amp``), else fp32 (never fp16: half precision changes outputs too
    much to be picked silently). A bad name or fp16 off CUDA is a ``ConfigError``.
    """
    mode = DEFAULT_AMP if amp is None else amp
    if mode not in INFERENCE_AMP_MODES:
        raise ConfigError(f"amp: {mode!r} is not one of {', '.join(INFERENCE_AMP_MODES)}")
    if mode == "fp16" and device.type != "cuda":
        raise ConfigError("amp: fp16 inference needs a CUDA device; use bf16 on CPU")
    if mode == "auto":
        return "bf16" if resolve_amp("auto", device)[0] == "bf16" else "none"
    return mode


@contextlib.contextmanager
def precision_context(mode: str, device: torch.device) -> Iterator[None]:
    """Autocast for ``mode`` (from ``inference_precision``) on ``device``; nothing for fp32."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)
    if dtype is None:
        yield
        return
    with torch.autocast(device.type, dtype=dtype):
        yield
