"""Self-describing, atomically written checkpoints.

A checkpoint is a folder::

    model.safetensors   weights of every model, keys "<model>.<param>" (EMA copies "ema.<model>...")
    meta.json           plugin, versions, the three configs, step, model names
    trainer.pt          optimisers, scalers, image pools, RNG states, samples consumed
                        (absent in inference-only checkpoints such as the shipped ones)

Runs keep them as ``<run>/checkpoints/step_0000200/`` with ``<run>/checkpoints/LATEST`` naming
the newest. Each folder is written under a temporary name, every file fsynced, then renamed into
place, and LATEST is replaced atomically afterwards: a crash or Ctrl-C during a save leaves the
previous checkpoint intact. ``trainer.pt`` is read with ``weights_only=True``: loading a
checkpoint never executes code.
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as save_weights
from torch import nn

from translate.atomic import atomic_path, atomic_write_text, remove_stale
from translate.errors import CheckpointError

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
META = "meta.json"
TRAINER = "trainer.pt"
LATEST = "LATEST"


def flatten_state(models: Mapping[str, nn.Module], prefix: str = "") -> dict[str, torch.Tensor]:
    """One flat dict of contiguous CPU tensors, keys "<prefix><model>.<param>"."""
    flat: dict[str, torch.Tensor] = {}
    for name, model in models.items():
        for key, value in model.state_dict().items():
            flat[f"{prefix}{name}.{key}"] = value.detach().cpu().contiguous()
    return flat


def write_checkpoint(
    folder: Path,
    *,
    weights: dict[str, torch.Tensor],
    meta: dict[str, Any],
    trainer_state: dict[str, Any] | None,
) -> Path:
    """Write a complete checkpoint folder atomically; replaces ``folder`` if it exists. A
    failure (disk full) removes the partial folder and raises ``OutputError``."""
    with atomic_path(folder, folder=True) as tmp:
        # serialised in memory, written by Python: a full disk then raises OSError(ENOSPC),
        # which atomic_path reports in one line (safetensors' and torch's own writers turn it
        # into a SafetensorError / "PytorchStreamWriter failed" RuntimeError traceback)
        (tmp / WEIGHTS).write_bytes(save_weights(weights))
        (tmp / META).write_text(json.dumps({"format": FORMAT_VERSION, **meta}, indent=2))
        if trainer_state is not None:
            buffer = io.BytesIO()
            torch.save(trainer_state, buffer)
            with open(tmp / TRAINER, "wb") as fh:
                fh.write(buffer.getbuffer())
    return folder


def save_run_checkpoint(
    run_dir: Path,
    step: int,
    *,
    weights: dict[str, torch.Tensor],
    meta: dict[str, Any],
    trainer_state: dict[str, Any],
    keep: int,
) -> Path:
    """Write ``<run>/checkpoints/step_N``, point LATEST at it, prune all but ``keep``."""
    root = run_dir / "checkpoints"
    folder = write_checkpoint(
        root / f"step_{step:07d}", weights=weights, meta=meta, trainer_state=trainer_state
    )
    atomic_write_text(root / LATEST, folder.name + "\n")
    done = sorted(p for p in root.glob("step_*") if p.is_dir())
    for stale in done[:-keep]:
        shutil.rmtree(stale, ignore_errors=True)
    return folder


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Remove half-written checkpoint folders of processes that no longer run (``kill -9``
    during a save); called when a run starts or resumes."""
    return remove_stale(run_dir / "checkpoints")


def resolve_checkpoint(path: Path) -> Path:
    """A checkpoint folder from: itself, a run folder (its LATEST), or ``<run>/checkpoints``."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.is_file():
        raise CheckpointError(f"{path}: expected a checkpoint or run folder, got a file")
    if (path / META).is_file():
        return path
    for root in (path / "checkpoints", path):
        latest = root / LATEST
        if latest.is_file():
            target = root / latest.read_text().strip()
            if not (target / META).is_file():
                raise CheckpointError(f"{latest}: points at {target.name}, which is missing")
            return target
    raise CheckpointError(f"{path}: not a checkpoint (no {META}) and not a run folder")


#: Types of the ``meta.json`` fields that code reads (others are informational).
META_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "plugin": (str, "a plugin name (string)"),
    "format": (int, "an integer"),
    "step": (int, "an integer"),
    "api_version": (int, "an integer"),
    "models": (list, "a list of model names"),
    "plugin_config": (dict, "an object"),
    "train_config": (dict, "an object"),
    "gan_config": (dict, "an object"),
}


def read_meta(folder: Path) -> dict[str, Any]:
    path = folder / META
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON (truncated or corrupt?)") from exc
    if not isinstance(meta, dict) or "plugin" not in meta:
        raise CheckpointError(f"{path}: not a translate checkpoint description")
    for key, (types, expected) in META_TYPES.items():
        value = meta.get(key)
        bad = value is not None and (
            not isinstance(value, types)
            or isinstance(value, bool)
            or (key == "models" and not all(isinstance(m, str) for m in value))
        )
        if key == "plugin" and value is None:
            bad = True
        if bad:
            raise CheckpointError(
                f"{path}: field {key!r} should be {expected}, got {json.dumps(value)[:60]}"
            )
    if meta.get("format", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {meta['format']} is newer than this translate "
            f"understands ({FORMAT_VERSION}); upgrade translate"
        )
    return meta


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    path = folder / WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    try:
        weights = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: truncated or corrupt ({exc})") from exc
    check_finite(weights, path)
    return weights


def check_finite(state: Mapping[str, torch.Tensor], source: Path) -> None:
    """Refuse weights holding NaN or infinity, in one line naming the first such tensor: a
    model built from them runs without an error and produces black images (a diverged
    foreign checkpoint; one of ours is never saved so, see ``run_state.diverged``)."""
    bad = [
        name
        for name, t in state.items()
        if t.is_floating_point() and not bool(torch.isfinite(t).all())
    ]
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise CheckpointError(
            f"{source}: tensor {bad[0]!r}{more} holds NaN or infinite values (a diverged "
            "training?); refusing to load weights that produce blank images"
        )


def load_models(
    weights: Mapping[str, torch.Tensor],
    models: Mapping[str, nn.Module],
    *,
    source: Path,
    prefix: str = "",
) -> None:
    """Load ``<prefix><model>.*`` tensors into each model; any mismatch is a CheckpointError."""
    for name, model in models.items():
        head = f"{prefix}{name}."
        state = {k[len(head) :]: v for k, v in weights.items() if k.startswith(head)}
        if not state:
            raise CheckpointError(f"{source}: no weights for model {prefix}{name!r}")
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            detail = " ".join(line.strip() for line in first[:3])
            raise CheckpointError(
                f"{source}: weights do not fit model {name!r} ({detail[:300]})"
            ) from exc


def read_trainer_state(folder: Path) -> dict[str, Any]:
    path = folder / TRAINER
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; this checkpoint cannot resume training")
    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol 4": the error below says it
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(
                f"{path}: refused: the file holds objects other than tensors "
                "(not loaded for safety)"
            ) from None
        raise CheckpointError(f"{path}: truncated or corrupt ({type(exc).__name__})") from exc
    except Exception as exc:
        raise CheckpointError(f"{path}: truncated or corrupt ({type(exc).__name__})") from exc
