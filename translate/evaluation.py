"""``translate eval``: a plugin's evaluation protocol over folders of images.

A plugin that can be evaluated implements ``evaluate(upscale, folder, cfg) -> rows``: it is
handed the model as a function on PIL images (a ``Translator``, so the torch and ONNX Runtime
backends and tiling are exactly those of ``translate run``) and returns one dict per image
(``"image"`` plus named figures). This module averages the figures per folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from translate.errors import ConfigError, PluginError


@dataclass(frozen=True)
class FolderResult:
    folder: Path
    rows: list[dict[str, Any]]

    @property
    def means(self) -> dict[str, float]:
        keys = [k for k in self.rows[0] if k != "image"] if self.rows else []
        return {k: sum(float(r[k]) for r in self.rows) / len(self.rows) for k in keys}


def evaluate(
    plugin_name: str,
    folders: list[Path],
    *,
    checkpoint: Path | None = None,
    model: str | None = None,
    backend: str | None = None,
    device: str = "auto",
    tile_size: int | None = None,
) -> tuple[str, list[FolderResult]]:
    """Evaluate a checkpoint (or shipped model) of ``plugin_name`` on each folder.

    Returns a description of the model evaluated and one result per folder.
    """
    from translate.inference.translator import Translator
    from translate.registry import load_plugin
    from translate.shipped import list_models, resolve_model

    plugin = load_plugin(plugin_name)
    if not hasattr(plugin, "evaluate"):
        raise PluginError(f"plugin {plugin_name} has no evaluation protocol")
    if checkpoint is not None and model is not None:
        raise ConfigError("give --checkpoint or --model, not both")
    if checkpoint is None:
        if model is None:  # the shipped model of this plugin, when there is one
            ours = [m.name for m in list_models() if m.plugin == plugin_name]
            if not ours:
                raise ConfigError(f"no model given: pass --checkpoint (no shipped {plugin_name})")
            model = ours[0]
        checkpoint = resolve_model(model)
    translator = Translator.from_checkpoint(
        checkpoint, device=device, backend=backend, tile_size=tile_size
    )
    if translator.plugin.name != plugin_name:
        raise ConfigError(
            f"{checkpoint}: a {translator.plugin.name} model, not {plugin_name}; "
            f"use translate eval {translator.plugin.name}"
        )
    results = [
        FolderResult(folder, plugin.evaluate(translator, folder, translator.plugin_cfg))
        for folder in folders
    ]
    return f"{translator.describe()} from {checkpoint}", results
