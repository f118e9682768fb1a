"""Loading models, below inference, export, serving and evaluation.

``load(path)`` turns what a user has into a loaded model:

* a checkpoint folder or run folder of ours -> ``LoadedModel`` (``loading.checkpoint``)
* an ``.onnx`` file from ``translate export`` -> ``LoadedOnnx`` (``loading.onnx_file``)
* a generator saved by pytorch-CycleGAN-and-pix2pix (``latest_net_G.pth``) -> ``LoadedModel``
  of our pix2pix or cyclegan plugin (``loading.reference``, ``loading.importing``)
* any other single weights file whose architecture spandrel recognises (ESRGAN, Real-ESRGAN,
  SwinIR, ...) -> ``LoadedModel`` (``loading.spandrel_file``)

Loading never imports export: running a PyTorch model on ``--backend onnx`` (its cached
ONNX export) is ``translate.inference.load.load``, above both.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from translate.errors import ConfigError
from translate.loading.checkpoint import checkpoint_plugin, load_checkpoint
from translate.loading.model import LoadedModel, LoadedOnnx, parse_options
from translate.loading.onnx_file import load_onnx, read_metadata

__all__ = [
    "LoadedModel",
    "LoadedOnnx",
    "load_checkpoint",
    "load_module",
    "load_onnx",
    "parse_options",
    "plugin_name",
    "read_metadata",
]

#: Single-file weights: a reference generator or (with spandrel) a super-resolution model.
WEIGHT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")


def is_onnx_file(path: Path | str) -> bool:
    return Path(path).suffix.lower() == ".onnx" and Path(path).is_file()


def is_weights_file(path: Path | str) -> bool:
    return Path(path).suffix.lower() in WEIGHT_SUFFIXES and Path(path).is_file()


def _load_weights_file(path: Path, options: Mapping[str, Any] | None, device: str) -> LoadedModel:
    """A reference generator when its keys say so, else whatever spandrel recognises."""
    from translate.loading.importing import load_reference
    from translate.loading.reference import detect, read_state_dict
    from translate.loading.spandrel_file import load_spandrel

    state = read_state_dict(path)
    if detect(state) is not None:
        return load_reference(path, options=dict(options or {}), device=device)
    if options:
        flag = "--" + next(iter(options)).replace("_", "-")
        raise ConfigError(f"option {flag}: {path.name} has no options")
    return load_spandrel(path, state, device=device)


def _weights_file_plugin(path: Path) -> str:
    from translate.loading.importing import reference_plugin
    from translate.loading.reference import detect, read_state_dict
    from translate.loading.spandrel_file import SPANDREL

    return reference_plugin(path) if detect(read_state_dict(path)) else SPANDREL


def plugin_name(path: Path | str) -> str:
    """The plugin a model file or folder needs, read without loading its weights."""
    if is_onnx_file(path):
        return read_metadata(path)["plugin"]
    if is_weights_file(path):
        return _weights_file_plugin(Path(path))
    return checkpoint_plugin(path)


def load_module(
    path: Path | str, *, options: Mapping[str, Any] | None = None, device: str = "cpu"
) -> LoadedModel:
    """Load ``path`` as a PyTorch module (what ``translate export`` exports)."""
    if is_onnx_file(path):
        raise ConfigError(f"{path}: already an ONNX model; export a checkpoint folder")
    if is_weights_file(path):
        return _load_weights_file(Path(path), options, device)
    return load_checkpoint(path, options=options, device=device)
