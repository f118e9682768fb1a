"""The parity check of an ONNX export: the inputs it is run on and the comparison of ONNX
Runtime's outputs with PyTorch's (``loading.onnx_export`` refuses a file that fails it).

Inputs are random at two sizes (a small square batch and a larger non-square image, to catch
sizes baked into the graph), or latents for a generating plugin; with conditioning inputs the
rows of the first batch cycle through every entry's one-hot, so each domain or class is
compared.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from translate.conditioning import bounds
from translate.errors import ExportError
from translate.loading.model import padded_size
from translate.loading.onnx_file import first_line as _first_line
from translate.plugin import ConditionInput, SizeRequirements

log = logging.getLogger(__name__)

#: Largest batch of the parity check's first input: its rows cycle through the one-hots of a
#: conditioning input, so up to this many domains or classes are each checked.
MAX_PARITY_ROWS = 16


def parity_inputs(req: SizeRequirements, channels: int, batch: int = 2) -> list[Tensor]:
    """Two random inputs in [-1, 1]: (batch, C, s, s) at the smallest convenient size and
    (1, C, h, w), non-square and larger, to catch sizes baked into the graph."""
    base = padded_size(max(req.minimum, req.multiple_of, 32), req)
    m = req.multiple_of
    gen = torch.Generator().manual_seed(0)
    shapes = [(batch, channels, base, base), (1, channels, base + m, 2 * base + m)]
    return [torch.rand(*s, generator=gen) * 2 - 1 for s in shapes]


def latent_inputs(shape: Sequence[int], batch: int = 2) -> list[Tensor]:
    """Two batches (``batch`` and 3) of N(0, 1) latents of ``shape``: a generating plugin's
    inputs."""
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(b, *shape, generator=gen) for b in (batch, 3)]


def parity_batch(conditions: Sequence[ConditionInput]) -> int:
    """The first parity input's batch: one row per entry of the largest condition (capped)."""
    return min(max([2, *(c.size for c in conditions if not c.is_code)]), MAX_PARITY_ROWS)


def parity_cases(
    inputs: Sequence[Tensor], conditions: Sequence[ConditionInput]
) -> list[tuple[Tensor, ...]]:
    """Each input with condition vectors whose rows cycle through the one-hots of every entry
    (row i: entry i mod size; the second input continues where the first stopped); a
    continuous input's rows spread over the values a user may give (``bounds``)."""
    cases, start = [], 0
    for x in inputs:
        b = x.shape[0]
        index = torch.arange(start, start + b)
        cases.append((x, *(_rows(c, index) for c in conditions)))
        start += b
    return cases


def _rows(cond: ConditionInput, index: Tensor) -> Tensor:
    if cond.is_code:  # N(0, I) rows, fixed by the first row's index
        gen = torch.Generator().manual_seed(int(index[0]))
        return torch.randn((index.shape[0], cond.size), generator=gen)
    if not cond.continuous:
        return torch.eye(cond.size)[index % cond.size]
    lo, hi = bounds(cond)
    entry = torch.arange(cond.size)
    frac = ((index[:, None] + entry[None]) * 0.377) % 1.0  # spread, distinct per row and entry
    return lo + (hi - lo) * frac


def check_parity(
    path: Path,
    inputs: Sequence[Tensor | tuple[Tensor, ...]],
    refs: Sequence[Tensor],
    *,
    tolerance: float,
    fp16: bool = False,
    shown_as: Path | None = None,
) -> tuple[list[tuple[tuple[int, ...], float]], str | None, str]:
    """Run ``path`` in ONNX Runtime on ``inputs`` and compare with the PyTorch ``refs``. An
    input is a tensor, or a tuple fed to the model's inputs in order (image, conditions).

        The CPU provider runs the check (always present, reproducible). An fp16 model that the CPU
        provider cannot run is checked on CUDA when a GPU exists, and otherwise left unchecked with
        a note saying so. Raises ExportError when the largest difference exceeds ``tolerance``.
    """
    import onnxruntime as ort

    from translate.loading.ort import CUDA, cuda_device_present, session_options

    name = shown_as or path
    cases = [case if isinstance(case, tuple) else (case,) for case in inputs]
    attempts = ["CPUExecutionProvider"]
    if fp16 and cuda_device_present() and CUDA in ort.get_available_providers():
        attempts.append(CUDA)
    outputs: list[np.ndarray] | None = None
    provider: str | None = None
    error: Exception | None = None
    for provider in attempts:
        try:
            session = ort.InferenceSession(
                str(path), sess_options=session_options(), providers=[provider]
            )
            feeds = [i.name for i in session.get_inputs()]
            outputs = [
                session.run(None, {n: t.numpy() for n, t in zip(feeds, case, strict=True)})[0]
                for case in cases
            ]
            break
        except Exception as exc:  # onnxruntime's own exception types
            error = exc
    if outputs is None:
        if fp16:
            note = f"no ONNX Runtime provider here runs this fp16 model ({_first_line(error)})"
            log.warning("%s: %s", name, note)
            return [], None, note
        raise ExportError(f"{name}: ONNX Runtime cannot run the export ({_first_line(error)})")
    checks: list[tuple[tuple[int, ...], float]] = []
    for (x, *_), y, ref in zip(cases, outputs, refs, strict=True):
        if y.shape != tuple(ref.shape):
            raise ExportError(
                f"{name}: ONNX Runtime output {y.shape} differs in shape from PyTorch's "
                f"{tuple(ref.shape)} for input {tuple(x.shape)}"
            )
        diff = float(np.abs(y.astype(np.float64) - ref.double().numpy()).max())
        checks.append((tuple(x.shape), diff if math.isfinite(diff) else math.inf))
    worst_shape, worst = max(checks, key=lambda c: c[1])
    if not worst <= tolerance:
        raise ExportError(
            f"{name}: ONNX Runtime disagrees with PyTorch: max |difference| {worst:.2e} > "
            f"{tolerance:.0e} on a {'x'.join(map(str, worst_shape))} input; not written"
        )
    return checks, provider, ""
