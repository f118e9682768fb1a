"""Shipped models: small default weights that come with translate, usable offline.

Each shipped model is a checkpoint folder (``model.safetensors`` + ``meta.json``) with a model
card (``MODEL_CARD.md``) under ``checkpoints/<name>/``. Installed from a wheel they live inside
the package (``translate/checkpoints``); in a source checkout, in the repository's top-level
``checkpoints/``; ``TRANSLATE_CHECKPOINTS`` points elsewhere (a folder of such folders).

``translate run image.png`` with no ``--checkpoint`` uses ``DEFAULT_MODEL``; ``--model NAME``
picks another; ``translate models`` lists them. This module imports no torch.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from translate.errors import ConfigError

DEFAULT_MODEL = "superres-x4"
MODEL_CARD = "MODEL_CARD.md"
ENV_VAR = "TRANSLATE_CHECKPOINTS"


@dataclass(frozen=True)
class ShippedModel:
    name: str
    plugin: str
    path: Path
    description: str
    scale: int = 1


def search_roots() -> list[Path]:
    """Where shipped models are looked for, first match wins."""
    roots: list[Path] = []
    if os.environ.get(ENV_VAR):
        roots.append(Path(os.environ[ENV_VAR]))
    package = Path(__file__).resolve().parent
    roots += [package / "checkpoints", package.parent / "checkpoints"]
    return roots


def _describe(folder: Path) -> ShippedModel | None:
    meta_path = folder / "meta.json"
    if not meta_path.is_file() or not (folder / "model.safetensors").is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError:
        return None
    card = folder / MODEL_CARD
    description = meta.get("description", "")
    if not description and card.is_file():
        # the card's first non-heading line is its one-line summary
        lines = [ln.strip() for ln in card.read_text().splitlines() if ln.strip()]
        description = next((ln for ln in lines if not ln.startswith("#")), "")
    scale = int(meta.get("plugin_config", {}).get("scale", 1))
    return ShippedModel(folder.name, meta.get("plugin", "?"), folder, description, scale)


def list_models() -> list[ShippedModel]:
    """Every shipped model found, sorted by name (a name found twice: the first root wins)."""
    found: dict[str, ShippedModel] = {}
    for root in search_roots():
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            model = _describe(folder)
            if model is not None and model.name not in found:
                found[model.name] = model
    return sorted(found.values(), key=lambda m: m.name)


def resolve_model(name: str | None = None) -> Path:
    """The checkpoint folder of shipped model ``name`` (``DEFAULT_MODEL`` when None)."""
    wanted = name or DEFAULT_MODEL
    models = {m.name: m for m in list_models()}
    if wanted in models:
        return models[wanted].path
    if not models:
        raise ConfigError(
            f"model {wanted!r} is not installed: no shipped models were found (looked in "
            f"{', '.join(str(r) for r in search_roots())}); give --checkpoint PATH"
        )
    close = difflib.get_close_matches(wanted, list(models), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(f"unknown model {wanted!r}; {hint}available: {', '.join(models)}")
