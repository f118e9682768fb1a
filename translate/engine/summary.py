"""Summaries of run folders (``translate runs``): what ran, how far, how it is doing.

A run folder is one a training run wrote: ``metrics.jsonl`` and/or ``checkpoints/``. Everything
here only reads: steps from the newest checkpoint's ``meta.json`` (or the metrics when no
checkpoint was written yet), the planned steps from the stored train config, the last logged
losses, the best evaluation metric when evaluation metrics were logged, size and age.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from translate.engine import checkpoint as ckpt
from translate.engine.curves import read_metrics
from translate.engine.watch import CURVES
from translate.errors import CheckpointError, TranslateError

#: Bookkeeping keys of a metrics record that are not losses.
_NOT_LOSSES = frozenset({"step", "time", "lr", "steps_per_s"})
#: Evaluation metrics where higher is better; every other ``eval`` metric is lower-is-better.
_HIGHER_IS_BETTER = ("psnr", "ssim", "accuracy", "acc", "is_")


@dataclass(frozen=True)
class RunSummary:
    path: Path
    plugin: str
    step: int
    planned: int | None
    losses: dict[str, float] = field(default_factory=dict)
    best: tuple[str, float, int] | None = None  # (metric, value, step)
    size_bytes: int = 0
    modified: float = 0.0
    latest_checkpoint: Path | None = None
    latest_samples: Path | None = None
    curves: Path | None = None

    @property
    def age_seconds(self) -> float:
        return max(time.time() - self.modified, 0.0)


def is_run_dir(path: Path) -> bool:
    return (path / "metrics.jsonl").is_file() or (path / "checkpoints" / ckpt.LATEST).is_file()


def find_runs(root: Path) -> list[Path]:
    """Run folders at or below ``root`` (two levels: ``runs/<run>`` and ``runs/<group>/<run>``)."""
    if is_run_dir(root):
        return [root]
    found = []
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        if is_run_dir(child):
            found.append(child)
        else:
            found += [g for g in sorted(child.iterdir()) if g.is_dir() and is_run_dir(g)]
    return found


def best_eval(records: list[dict[str, Any]]) -> tuple[str, float, int] | None:
    """The best value of the first evaluation metric logged (``eval...`` keys)."""
    for record in records:
        keys = [k for k in record if k.startswith("eval") and isinstance(record[k], int | float)]
        if keys:
            metric = sorted(keys)[0]
            break
    else:
        return None
    higher = any(tag in metric.lower() for tag in _HIGHER_IS_BETTER)
    values = [
        (float(r[metric]), int(r["step"]))
        for r in records
        if isinstance(r.get(metric), int | float) and math.isfinite(r[metric])
    ]
    if not values:
        return None
    value, step = (max if higher else min)(values, key=lambda v: v[0])
    return metric, value, step


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def summarize(run_dir: Path) -> RunSummary:
    """One run's summary; a run folder that cannot be read raises ``CheckpointError``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run folder")
    if not is_run_dir(run_dir):
        raise CheckpointError(f"{run_dir}: not a run folder (no metrics.jsonl or checkpoints/)")
    records = read_metrics(run_dir / "metrics.jsonl")
    meta: dict[str, Any] = {}
    latest = None
    try:
        latest = ckpt.resolve_checkpoint(run_dir)
        meta = ckpt.read_meta(latest)
    except TranslateError:
        latest = None
    if not meta:  # no checkpoint yet: the metrics are all there is
        meta = _meta_of_any_checkpoint(run_dir)
    last = records[-1] if records else {}
    step = int(meta.get("step", 0)) if latest is not None else 0
    step = max(step, int(last.get("step", 0)))
    planned = (meta.get("train_config") or {}).get("max_steps")
    samples = sorted((run_dir / "samples").glob("step_*.png"))
    stamps = [p.stat().st_mtime for p in (run_dir / "metrics.jsonl", latest) if p and p.exists()]
    return RunSummary(
        path=run_dir,
        plugin=str(meta.get("plugin", "?")),
        step=step,
        planned=int(planned) if isinstance(planned, int) else None,
        losses={
            k: float(v)
            for k, v in last.items()
            if k not in _NOT_LOSSES and isinstance(v, int | float) and not k.startswith("eval")
        },
        best=best_eval(records),
        size_bytes=_size(run_dir),
        modified=max(stamps, default=run_dir.stat().st_mtime),
        latest_checkpoint=latest,
        latest_samples=samples[-1] if samples else None,
        curves=run_dir / CURVES if (run_dir / CURVES).is_file() else None,
    )


def _meta_of_any_checkpoint(run_dir: Path) -> dict[str, Any]:
    for folder in sorted((run_dir / "checkpoints").glob("step_*"), reverse=True):
        try:
            return json.loads((folder / ckpt.META).read_text())
        except (OSError, ValueError):
            continue
    return {}


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def human_age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"
