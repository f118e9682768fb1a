"""Side graphs: the parts of a model other than its generator or translator that a user's input
goes through first, each exported as its own ONNX graph beside the main one.

``translate export RUN -o model.onnx`` writes the model and, for each side graph the plugin
has, ``model<suffix>`` beside it, checked against PyTorch like the model (``onnx_export.
save_checked``), its metadata ``part`` naming what it is:

* ``code_encoder`` (``model.encoder.onnx``, ``loading.code_encoder``): bicyclegan's and
  munit's reference image -> its code, for ``--style-from``;
* ``text_encoder`` (``model.text.onnx``, ``loading.text_encoder``): a text-to-image model's
  prompt tokens -> its generator's text vector, for ``--prompt``, with the vocabulary in the
  metadata.

Whoever runs the ``.onnx`` file (``Translator.from_onnx``, ``Sampler``) loads the side graph
beside it when it is there (``SideGraph.load``), so the option works without the checkpoint;
``load_onnx`` refuses a side graph given as the model. A new side graph is one ``SideGraph``
value (its part, suffix, the plugin hook that gives its module, its exporter and its ONNX
Runtime class) added to ``loading.companions.SIDE_GRAPHS``, which ``translate export`` and the
ONNX cache of ``--backend onnx`` both write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from translate.errors import ConfigError

__all__ = ["SAME", "OnnxSideGraph", "SideGraph", "side_path"]

#: Metadata a side graph shares with the model it was exported with.
SAME = ("plugin", "plugin_config", "step")


def side_path(onnx_path: Path | str, suffix: str) -> Path:
    """``model.onnx`` -> ``model<suffix>`` beside it (``.encoder.onnx``: ``model.encoder.onnx``)."""
    path = Path(onnx_path)
    stem = path.name[: -len(".onnx")] if path.name.lower().endswith(".onnx") else path.name
    return path.with_name(stem + suffix)


class OnnxSideGraph:
    """An exported side graph in ONNX Runtime (CPU): its inputs in the graph's order ->
    its first output, float32; ``metadata`` holds the export's metadata."""

    device = torch.device("cpu")
    #: the metadata ``part`` the file must have
    part = ""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        from translate.loading.onnx_file import read_metadata
        from translate.loading.ort import CPU, session_options

        md = read_metadata(path)
        if md.get("part") != self.part:
            raise ConfigError(
                f"{path}: not the {self.part.replace('_', ' ')} of a model (metadata part "
                f"{md.get('part', 'missing')!r})"
            )
        self.path, self.metadata = path, md
        self.session = ort.InferenceSession(str(path), session_options(), providers=[CPU])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def run(self, *inputs: Tensor) -> Tensor:
        feeds = {n: t.detach().cpu().numpy() for n, t in zip(self.inputs, inputs, strict=True)}
        return torch.from_numpy(self.session.run(None, feeds)[0])


@dataclass(frozen=True)
class SideGraph:
    """One kind of side graph: metadata ``part``, file ``suffix``, ``module_of(loaded)`` (the
    plugin's module of a ``LoadedModel``, None when it has none), ``export(loaded, out,
    opset=...)`` -> ``ExportResult``, and ``runtime`` (its ``OnnxSideGraph`` class)."""

    part: str
    suffix: str
    module_of: Callable[[Any], Any]
    export: Callable[..., Any]
    runtime: type[OnnxSideGraph]

    def path(self, onnx_path: Path | str) -> Path:
        return side_path(onnx_path, self.suffix)

    def load(self, onnx_path: Path | str, model: Mapping[str, str] | None = None) -> Any:
        """The side graph exported beside ``onnx_path`` in ONNX Runtime, or None. With the
        model's metadata ``model``, one line when the side graph was exported from another
        checkpoint (a stale file left beside a new export)."""
        path = self.path(onnx_path)
        if not path.is_file():
            return None
        graph = self.runtime(path)
        if model is not None and any(graph.metadata.get(k) != model.get(k) for k in SAME):
            raise ConfigError(
                f"{path}: exported from another model than {Path(onnx_path).name} (its "
                f"plugin, config or step differ); export the model again to write both"
            )
        return graph
