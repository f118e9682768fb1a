"""The service's memory budget: what one request costs, what the machine allows.

``translate serve --max-memory`` bounds the process's resident memory. At start the models are
loaded and warmed up; what the process then holds (the runtime, the weights) is the baseline,
and the rest of ``--max-memory`` is the budget for work in flight. Every request is priced from
its image header before it is decoded (``RequestCost``): the decoded input and its float copies,
the output and its float copies, the encoded result, and the network's activations for the
largest piece run at once (a tile, or the whole padded image when it is not tiled). The
inference pool runs requests together only while their prices fit the budget; the others wait
in the queue (``translate.serve.pool``).

Activations are measured, not guessed: at start the model runs once on a probe image with a
hook on every module that keeps the sum of the live outputs' storage, and its peak per pixel
is the model's activation price (convolutional networks' activations grow linearly with the
pixels). An ONNX model is probed through its plugin's PyTorch module with random weights (the
same graph), times a factor for ONNX Runtime's arena.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from translate.errors import ConfigError

log = logging.getLogger(__name__)

#: Bytes per input pixel besides activations: the decoded image (PIL keeps RGB in 4 bytes),
#: the float32 tensor and its padded copy (3 channels x 4 bytes each).
INPUT_BYTES_PER_PIXEL = 4 + 2 * 12
#: Bytes per output pixel: the float32 output and the tiles' blending weights, the
#: post-processing copies, the PIL image and the encoded result (at worst uncompressed).
OUTPUT_BYTES_PER_PIXEL = 12 + 4 + 12 + 4 + 3
#: Share of the budget for request bodies being received or waiting in the queue; the rest is
#: for the running batches.
UPLOAD_SHARE = 0.25
#: Convolution workspaces and allocator slack on top of the measured module outputs.
ACTIVATION_SLACK = 1.5
#: ONNX Runtime's arena holds more than PyTorch's live tensors (measured: about 2x).
ONNX_FACTOR = 2.0
#: Activation price when nothing can be probed (an ONNX file whose plugin is not installed).
FALLBACK_ACTIVATION_BYTES_PER_PIXEL = 4096.0
#: Default --max-memory: this share of the machine's (or the container's) memory.
DEFAULT_MEMORY_SHARE = 0.5

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_bytes(text: str, *, option: str = "--max-memory") -> int:
    """``"2G"``, ``"512M"``, ``"1.5GiB"``, ``"1000000"`` -> bytes (units are powers of 1024)."""
    match = _SIZE.match(text)
    if not match:
        raise ConfigError(f"{option}: {text!r} is not a size (examples: 2G, 512M, 1.5GiB)")
    value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if value < 1:
        raise ConfigError(f"{option}: must be positive, got {text!r}")
    return int(value)


def machine_memory() -> int | None:
    """The memory this process may use: the machine's, or its cgroup's limit when lower."""
    total = None
    with contextlib.suppress(ValueError, OSError, AttributeError):
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < (total or 1 << 62):
            total = int(text)
    return total


def default_max_memory() -> int:
    total = machine_memory()
    return int(total * DEFAULT_MEMORY_SHARE) if total else 4 * 1024**3


def current_rss() -> int | None:
    """This process's resident memory now (Linux), or None."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def split_budget(budget: int) -> tuple[int, int]:
    """(uploads, work): the budget's share for request bodies and for running batches."""
    uploads = int(budget * UPLOAD_SHARE)
    return uploads, budget - uploads


def format_bytes(n: float) -> str:
    return f"{n / 1024**3:.2f} GiB" if n >= 1024**3 else f"{n / 1024**2:.0f} MiB"


# ---------------------------------------------------------------------------- activations
def _peak_output_bytes(module: Any, x: Any, *conditions: Any) -> int:
    """Peak of the summed storage of live module outputs during ``module(x, *conditions)``."""
    import torch

    live: dict[int, int] = {}
    state = {"now": 0, "peak": 0}

    def release(ptr: int) -> None:
        state["now"] -= live.pop(ptr, 0)

    def hook(_mod: Any, _inp: Any, out: Any) -> None:
        outs = out if isinstance(out, (tuple, list)) else (out,)
        for t in outs:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
            if ptr in live:
                continue  # a view or an in-place result: the same memory
            live[ptr] = storage.nbytes()
            state["now"] += live[ptr]
            state["peak"] = max(state["peak"], state["now"])
            weakref.finalize(t, release, ptr)

    handles = [m.register_forward_hook(hook) for m in module.modules()]
    try:
        with torch.inference_mode():
            module(x, *conditions)
    finally:
        for handle in handles:
            handle.remove()
    return state["peak"]


def _probe_module(translator: Any) -> tuple[Any, float]:
    """A PyTorch module computing what ``translator`` computes (its own, or for an ONNX model
    the plugin's with random weights) and the factor for its backend."""
    module = translator.module
    if module is not None:
        return module, 1.0
    plugin, cfg = translator.plugin, translator.plugin_cfg
    if cfg is None or not callable(getattr(plugin, "build_models", None)):
        return None, ONNX_FACTOR
    try:
        models = plugin.build_models(cfg)
        for model in models.values():
            model.eval()
        opts = translator.opts or plugin.inference_config_cls()
        return plugin.inference_module(models, cfg, opts), ONNX_FACTOR
    except Exception as exc:  # a plugin that cannot rebuild: fall back to a fixed price
        log.debug("cannot rebuild %s for a memory probe: %r", plugin, exc)
        return None, ONNX_FACTOR


def activation_bytes_per_pixel(translator: Any) -> float:
    """Peak activation bytes per padded input pixel of ``translator``'s network (probed on the
    CPU at a small size; see the module docstring)."""
    import torch

    from translate.inference.tiling import padded_size

    module, factor = _probe_module(translator)
    if module is None:
        return FALLBACK_ACTIVATION_BYTES_PER_PIXEL
    req = translator.requirements
    side = padded_size(max(req.minimum, req.multiple_of, 64), req)
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    x = torch.zeros(1, translator.in_channels, side, side, device=device)
    # a module with conditioning inputs (stargan's label) takes their vectors after x
    vectors = [v.to(device) for v in getattr(translator, "condition_values", ())]
    peak = _peak_output_bytes(module, x, *vectors)
    return peak / (side * side) * ACTIVATION_SLACK * factor


# ---------------------------------------------------------------------------- pricing
@dataclass(frozen=True)
class RequestCost:
    """Prices requests for one served model (a ``Translator`` and its activation price)."""

    scale: int
    activation_bpp: float  # per padded input pixel of the piece run at once
    tile_size: int | None
    tile_overlap: int | None
    requirements: Any
    max_side: int | None

    @classmethod
    def of(cls, translator: Any) -> RequestCost:
        return cls(
            scale=int(translator.requirements.scale),
            activation_bpp=activation_bytes_per_pixel(translator),
            tile_size=translator.tile_size,
            tile_overlap=translator.tile_overlap,
            requirements=translator.requirements,
            max_side=translator.backend.max_side,
        )

    def piece_pixels(self, w: int, h: int, tile_size: int | None = -1) -> int:
        """Padded input pixels run through the network at once: a tile, or the whole image.
        ``tile_size`` -1: the model's own setting."""
        from translate.inference.tiling import padded_size, resolve_tiles, should_tile

        tile_size = self.tile_size if tile_size == -1 else tile_size
        req = self.requirements
        tile = should_tile(h, w, tile_size, max_side=self.max_side)
        if tile is None:
            return padded_size(h, req) * padded_size(w, req)
        tile = max(tile, padded_size(max(req.minimum, 1), req))
        side = resolve_tiles(tile, self.tile_overlap, req, max_side=self.max_side).tile
        return padded_size(min(h, side), req) * padded_size(min(w, side), req)

    def bytes(self, w: int, h: int, tile_size: int | None = -1) -> int:
        """Bytes one ``w`` x ``h`` image needs while it is translated."""
        pixels = w * h
        out_pixels = pixels * self.scale * self.scale
        piece = self.piece_pixels(w, h, tile_size)
        return int(
            pixels * INPUT_BYTES_PER_PIXEL
            + out_pixels * OUTPUT_BYTES_PER_PIXEL
            + piece * self.activation_bpp
        )
