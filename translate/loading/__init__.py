"""Loading models, below inference, export, serving and evaluation.

``identify(path)`` (``loading.identify``) says once what a user has; ``load_module`` turns it
into a loaded model:

* a checkpoint folder or run folder of ours -> ``LoadedModel`` (``loading.checkpoint``)
* an ``.onnx`` file from ``translate export`` -> ``LoadedOnnx`` (``loading.onnx_file``)
* a generator saved by pytorch-CycleGAN-and-pix2pix (``latest_net_G.pth``) -> ``LoadedModel``
  of our pix2pix or cyclegan plugin (``loading.reference``, ``loading.importing``)
* any other single weights file whose architecture spandrel recognises (ESRGAN, Real-ESRGAN,
  SwinIR, ...) -> ``LoadedModel`` (``loading.spandrel_file``)

and, with ``backend="onnx"``, a PyTorch model becomes its cached ONNX export
(``loading.onnx_cache``, made by ``loading.onnx_export``). Inference (``Translator``) and
export (``translate.export``, the command's API over ``loading.onnx_export``) both build on
what this returns and never import each other; loading imports neither.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from translate.errors import ConfigError
from translate.loading.checkpoint import load_checkpoint
from translate.loading.identify import (
    ModelRef,
    as_ref,
)
from translate.loading.model import LoadedModel, LoadedOnnx, parse_options
from translate.loading.onnx_file import load_onnx, read_metadata

__all__ = [
    "LoadedModel",
    "LoadedOnnx",
    "ModelRef",
    "load",
    "load_checkpoint",
    "load_module",
    "load_onnx",
    "parse_options",
    "plugin_name",
    "read_metadata",
]


def _load_weights_file(
    ref: ModelRef, options: Mapping[str, Any] | None, device: str
) -> LoadedModel:
    """A reference generator when its keys say so, else whatever spandrel recognises."""
    from translate.loading.importing import load_reference
    from translate.loading.reference import read_state_dict
    from translate.loading.spandrel_file import load_spandrel

    if ref.kind == "reference":
        return load_reference(ref.location, options=dict(options or {}), device=device)
    if options:
        flag = "--" + next(iter(options)).replace("_", "-")
        raise ConfigError(f"option {flag}: {ref.location.name} has no options")
    return load_spandrel(ref.location, read_state_dict(ref.location), device=device)


def plugin_name(path: Path | str | ModelRef) -> str:
    """The plugin a model file or folder needs, read without loading its weights."""
    return as_ref(path).plugin


def load_module(
    path: Path | str | ModelRef,
    *,
    options: Mapping[str, Any] | None = None,
    device: str = "cpu",
) -> LoadedModel:
    """Load ``path`` (or an identified ``ModelRef``) as a PyTorch module (what ``translate
    export`` exports)."""
    ref = as_ref(path)
    if ref.kind == "onnx":
        raise ConfigError(f"{path}: already an ONNX model; export a checkpoint folder")
    if ref.kind in ("reference", "spandrel"):
        return _load_weights_file(ref, options, device)
    return load_checkpoint(ref.location, options=options, device=device, meta=ref.meta)


BACKENDS = ("torch", "onnx")


def load(
    path: Path | str | ModelRef,
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
    ref = as_ref(path)  # identified once, here or by the caller
    if ref.kind == "onnx":
        if backend not in (None, "onnx"):
            raise ConfigError(f"{path}: an ONNX model runs on --backend onnx, not {backend}")
        return load_onnx(ref.location, options=options)
    if backend != "onnx":
        if fp16:
            raise ConfigError("fp16: selects a half-precision ONNX export; use --amp with torch")
        return load_module(ref, options=options, device=device)
    return _as_onnx(load_module(ref, options=options, device="cpu"), fp16=fp16)


def _as_onnx(loaded: LoadedModel, *, fp16: bool = False) -> LoadedOnnx:
    """``loaded``'s cached ONNX export, loaded for ONNX Runtime, with the checkpoint's meta."""
    import dataclasses

    from translate.conditioning import split_options
    from translate.config import config_to_dict
    from translate.loading.onnx_cache import cached_onnx  # the exporter, only when needed

    # the options that pick a conditioning input's value (stargan's ``to``) are inputs of the
    # export: the ONNX model is fed them as the PyTorch one would be
    options = config_to_dict(loaded.opts) if dataclasses.is_dataclass(loaded.opts) else {}
    _, chosen = split_options(loaded.conditions, options)
    onnx = load_onnx(cached_onnx(loaded, fp16=fp16), options=chosen)
    onnx.meta = {**onnx.meta, **loaded.meta, "ema": loaded.ema, "source": str(loaded.source)}
    return onnx
