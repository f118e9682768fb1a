"""The code encoder of a model with many answers per input (bicyclegan's E: Zhu et al. 2017,
Sec. 3.3; munit's style encoder: Huang et al. 2018, Sec. 3.2) as its own ONNX graph.

``translate export RUN -o model.onnx`` writes the translator (image, code -> image) and, for a
plugin with a ``code_encoder``, the encoder beside it as ``model.encoder.onnx``: a reference
image (B, 3, S, S) in [-1, 1] -> its code (B, dim), checked against PyTorch like any export
(metadata ``part`` = code_encoder). ``Translator.from_onnx`` loads that file when it is there,
so ``translate run model.onnx --style-from ref.png`` and the service's ``style`` field work
without the checkpoint.

Below inference and export alike (both use it). The reference is resized to the training crop
S x S (bicubic, ``translate.inference.multimodal.style_code``) on both backends, as both
papers' test code loads a style image at the training size; the encoder's graph is then one
fixed size.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import Tensor

from translate.errors import ConfigError
from translate.loading.side_graph import OnnxSideGraph, SideGraph, side_path

__all__ = [
    "CODE_ENCODER",
    "ENCODER_SUFFIX",
    "OnnxCodeEncoder",
    "code_encoder_of",
    "encoder_path",
    "export_code_encoder",
    "load_code_encoder",
    "reference_side",
]

ENCODER_SUFFIX = ".encoder.onnx"


def encoder_path(onnx_path: Path | str) -> Path:
    """``model.onnx`` -> ``model.encoder.onnx`` (beside it)."""
    return side_path(onnx_path, ENCODER_SUFFIX)


def reference_side(plugin_cfg: Any, requirements: Any) -> int:
    """The square side S a reference is encoded at: the training crop, a valid input size."""
    m = max(1, int(requirements.multiple_of))
    side = int(getattr(plugin_cfg, "crop_size", 0) or 0)
    side = max(side, int(requirements.minimum), m)
    return -(-side // m) * m


class OnnxCodeEncoder(OnnxSideGraph):
    """An exported code encoder in ONNX Runtime (CPU): (B, 3, S, S) -> (B, dim) float32."""

    part = "code_encoder"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.side = int(json.loads(self.metadata["encoder_input"])[-1])

    def __call__(self, x: Tensor) -> Tensor:
        return self.run(x.float())


def load_code_encoder(
    onnx_path: Path | str, model: dict[str, str] | None = None
) -> OnnxCodeEncoder | None:
    """The code encoder exported beside ``onnx_path``, or None when there is none; ``model``:
    the model's metadata, to refuse an encoder of another export (``SideGraph.load``)."""
    return CODE_ENCODER.load(onnx_path, model)


def code_encoder_of(loaded: Any) -> Any:
    """The plugin's code encoder of a loaded checkpoint (``LoadedModel``), or None."""
    from translate.conditioning import codes

    hook = getattr(loaded.plugin, "code_encoder", None)
    if hook is None or not codes(loaded.conditions):
        return None
    return hook(loaded.models, loaded.plugin_cfg, loaded.opts)


def export_code_encoder(loaded: Any, out: Path | str, *, opset: int | None = None) -> Any:
    """Export the plugin's ``code_encoder`` of a loaded checkpoint (``LoadedModel``) to ``out``,
    checked against PyTorch; an ``ExportResult``."""
    import dataclasses

    from translate.conditioning import codes
    from translate.loading.onnx_export import export_loaded

    encoder = code_encoder_of(loaded)
    if encoder is None:
        raise ConfigError(f"{loaded.source}: plugin {loaded.plugin.name} has no code encoder")
    side = reference_side(loaded.plugin_cfg, loaded.requirements)
    shape = (3, side, side)
    extra = {
        "part": "code_encoder",
        "encoder_input": json.dumps(list(shape)),
        "code": codes(loaded.conditions)[0].name,
        "code_dim": str(codes(loaded.conditions)[0].size),
    }
    encoder.eval()
    return export_loaded(
        dataclasses.replace(loaded, module=encoder), Path(out), opset=opset,
        input_shape=shape, metadata_extra=extra, conditions=(),
    )  # fmt: skip


#: The code encoder as a side graph of ``translate export`` (``loading.side_graph``).
CODE_ENCODER = SideGraph(
    "code_encoder", ENCODER_SUFFIX, code_encoder_of, export_code_encoder, OnnxCodeEncoder
)
