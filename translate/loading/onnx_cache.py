"""The ONNX export a checkpoint runs as on ``--backend onnx``: made once, then reused.

Running a PyTorch model in ONNX Runtime needs an export, and an export takes seconds to
minutes; so the first run exports (parity-checked, as ``translate export`` does) into the
user's cache directory and every later run loads the cached file. The cache never lives next
to the model: a checkpoint folder may be read-only, shipped inside the installed package, or
in a git clone. ``TRANSLATE_CACHE_DIR`` moves the cache (a service account without a home,
tests); otherwise it is ``platformdirs.user_cache_path("translate")/onnx``.

The model's side graphs (``loading.companions``: a code or text encoder) are cached beside it,
so ``--style-from`` and ``--prompt`` work on this backend too.

The exporter it runs (``loading.onnx_export``) lives in loading too, below ``translate.export``
(the command's API over it), so loading never imports export.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import platformdirs
import torch

import translate
from translate.conditioning import split_options
from translate.config import config_to_dict
from translate.errors import CheckpointError
from translate.loading.companions import export_side_graphs
from translate.loading.model import LoadedModel
from translate.loading.onnx_export import export_loaded

log = logging.getLogger(__name__)

CACHE_ENV = "TRANSLATE_CACHE_DIR"


def cache_dir() -> Path:
    """Where translate caches derived files (``$TRANSLATE_CACHE_DIR`` or the user cache)."""
    override = os.environ.get(CACHE_ENV)
    return Path(override) if override else platformdirs.user_cache_path("translate")


def cache_key(loaded: LoadedModel, *, fp16: bool, opset: int | None) -> str:
    """A hash of what the export depends on: the weights file (path, size, mtime), the
    inference options, the precision and the software versions."""
    weights = loaded.weights_file or loaded.source
    options = config_to_dict(loaded.opts) if loaded.opts is not None else {}
    stat = weights.stat()
    key = {
        "source": str(weights.resolve()),
        "weights": [stat.st_size, stat.st_mtime_ns],
        # not the options that pick a conditioning input's value: the export takes them
        "options": split_options(loaded.conditions, options)[0],
        "fp16": fp16,
        "opset": opset,
        "translate": translate.__version__,
        "torch": torch.__version__,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def cached_onnx(loaded: LoadedModel, *, fp16: bool = False, opset: int | None = None) -> Path:
    """The cached ONNX export of ``loaded``, exporting it first when there is none."""
    source = loaded.source.resolve()
    named = (p.name for p in (source, *source.parents) if p.name not in ("", "checkpoints"))
    stem = Path(next((n for n in named if not n.startswith("step_")), "model")).stem
    path = cache_dir() / "onnx" / f"{stem}-{cache_key(loaded, fp16=fp16, opset=opset)}.onnx"
    if path.is_file():
        log.info("using the cached ONNX export %s", path)
        return path
    # a warning, so that the CLI shows it: the first run is slower by the export's time
    log.warning("exporting %s to ONNX once (cached at %s)", loaded.source, path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # its side graphs first: the model's file appearing is what marks the cache complete
        export_side_graphs(loaded, path, opset=opset)
        export_loaded(loaded, path, fp16=fp16, opset=opset)
    except OSError as exc:
        raise CheckpointError(
            f"{path.parent}: cannot write the ONNX cache ({exc.strerror or exc}); "
            f"set {CACHE_ENV} to a writable folder"
        ) from None
    return path
