"""What a model path is, asked of the file system once: ``identify(path) -> ModelRef``.

A path a user gives (``--checkpoint``, ``translate export``, ``serve``, ``eval``...) is one of

* ``checkpoint``: a checkpoint folder or a run folder of ours (``meta.json`` names the plugin)
* ``onnx``: an ``.onnx`` file written by ``translate export`` (its metadata names the plugin)
* ``reference``: a generator saved by pytorch-CycleGAN-and-pix2pix (loaded as pix2pix/cyclegan)
* ``spandrel``: any other single weights file whose architecture spandrel recognises

``identify`` reads just enough (``meta.json``, the ONNX metadata, a weights file's keys) to
say which, and returns it as a small frozen ``ModelRef``. The loaders (``load_module``,
``translate.inference.load.load``) and the CLI take a ``ModelRef`` as well as a path, so a
caller identifies once and passes the description down instead of sniffing the path again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from translate.engine import checkpoint as ckpt
from translate.loading.onnx_file import read_metadata

ModelKind = Literal["checkpoint", "onnx", "reference", "spandrel"]

#: Single-file weights: a reference generator or (with spandrel) a super-resolution model.
WEIGHT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")


@dataclass(frozen=True)
class ModelRef:
    """One identified model: what was given, its kind, the plugin it needs, its metadata
    (``meta.json`` of a checkpoint, the metadata of an ONNX file, empty for a weights file)
    and the file or folder to load (the resolved checkpoint folder, the file itself)."""

    source: Path
    kind: ModelKind
    plugin: str
    location: Path
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __str__(self) -> str:
        return str(self.source)


def is_onnx_file(path: Path | str) -> bool:
    return Path(path).suffix.lower() == ".onnx" and Path(path).is_file()


def is_weights_file(path: Path | str) -> bool:
    return Path(path).suffix.lower() in WEIGHT_SUFFIXES and Path(path).is_file()


def identify(path: Path | str) -> ModelRef:
    """Identify ``path`` (see the module's docstring); one-line errors for what it is not."""
    path = Path(path)
    if is_onnx_file(path):
        meta = read_metadata(path)
        return ModelRef(path, "onnx", str(meta["plugin"]), path, meta)
    if is_weights_file(path):
        from translate.loading.importing import reference_plugin
        from translate.loading.reference import detect, read_state_dict
        from translate.loading.spandrel_file import SPANDREL

        if detect(read_state_dict(path)) is not None:
            return ModelRef(path, "reference", reference_plugin(path), path)
        return ModelRef(path, "spandrel", SPANDREL, path)
    folder = ckpt.resolve_checkpoint(path)
    meta = ckpt.read_meta(folder)
    return ModelRef(path, "checkpoint", str(meta["plugin"]), folder, meta)


def as_ref(model: ModelRef | Path | str) -> ModelRef:
    """``model`` itself when already identified, else ``identify(model)``."""
    return model if isinstance(model, ModelRef) else identify(model)
