"""The side graphs a model is exported with (``loading.side_graph``): its code encoder
(``loading.code_encoder``, bicyclegan, munit) and its text encoder (``loading.text_encoder``,
stackgan), each written beside the model's file when the plugin has one.

Both writers of an export use ``export_side_graphs``: ``translate export`` (``translate.export.
onnx``) and the ONNX cache of ``--backend onnx`` (``loading.onnx_cache``), so ``translate
sample RUN --backend onnx --prompt ...`` and ``translate run RUN --backend onnx --style-from``
find the graphs beside the cached model as they do beside an exported one. A new kind of side
graph is one ``SideGraph`` value added to ``SIDE_GRAPHS``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from translate.loading.code_encoder import CODE_ENCODER
from translate.loading.text_encoder import TEXT_ENCODER

__all__ = ["SIDE_GRAPHS", "export_side_graphs"]

#: Every kind of side graph, in the order they are written.
SIDE_GRAPHS = (CODE_ENCODER, TEXT_ENCODER)


def export_side_graphs(loaded: Any, out: Path | str, *, opset: int | None = None) -> list[Any]:
    """Export each side graph the plugin of ``loaded`` (a ``LoadedModel``) has beside ``out``
    (the model's ``.onnx`` path), each checked against PyTorch; their ``ExportResult``s."""
    return [
        side.export(loaded, side.path(out), opset=opset)
        for side in SIDE_GRAPHS
        if side.module_of(loaded) is not None
    ]
