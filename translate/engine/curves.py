"""``curves.png``: a run's loss curves, one panel per loss family, drawn from ``metrics.jsonl``.

A GAN run is judged by looking: are D and G balanced, did a loss collapse, is the
reconstruction still falling? Each logged key is put in a family by its name (the plugins'
naming: ``D_*`` critics, ``G_adv*``/``G_gan*`` the generator's adversarial terms, penalties such
as ``r1``/``gp``, ``cycle_*``/``idt_*`` and everything else of G reconstruction-type terms),
drawn raw (faint) and smoothed, on a log scale when the family spans decades. The learning
rate and steps/s have panels of their own; the checkpoints on disk are marked in every panel.

Drawn with matplotlib's Agg backend: no display, no server.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from translate.atomic import atomic_path
from translate.engine.run_log import read_metrics as read_metrics

#: Keys of a metrics record that are bookkeeping, not curves.
NOT_PLOTTED = frozenset({"step", "time"})

#: Panels in display order: (family, title).
FAMILIES: tuple[tuple[str, str], ...] = (
    ("discriminator", "discriminator (losses, mean logits)"),
    ("adversarial", "generator: adversarial"),
    ("reconstruction", "generator: reconstruction / cycle / perceptual"),
    ("penalty", "penalties"),
    ("augment", "augmentation (ADA's p, r_t)"),
    ("eval", "evaluation"),
    ("other", "other"),
    ("lr", "learning rate"),
    ("speed", "steps/s"),
)

_PENALTY = re.compile(r"(^|_)(r1|r2|gp|gn|penalty|reg)($|_)", re.IGNORECASE)
_RECONSTRUCTION = re.compile(
    r"(^|_)(cycle|idt|identity|l1|pixel|perceptual|vgg|fm|rec|charbonnier)($|_)", re.IGNORECASE
)


def family(key: str) -> str:
    """The panel a logged key belongs to, from the key's name."""
    if key == "lr" or key.startswith("lr_"):
        return "lr"
    if key == "steps_per_s":
        return "speed"
    if key.startswith(("eval", "val_")):
        return "eval"
    if key.startswith("ada_"):
        return "augment"
    if _PENALTY.search(key):
        return "penalty"
    if key.startswith("D"):
        return "discriminator"
    lowered = key.lower()
    if key.startswith("G") and ("adv" in lowered or "gan" in lowered):
        return "adversarial"
    if key.startswith("G") or _RECONSTRUCTION.search(key):
        return "reconstruction"
    return "other"


def series(records: Iterable[dict]) -> dict[str, tuple[list[float], list[float]]]:
    """Per key: (steps, values) of the finite numeric values."""
    out: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for record in records:
        for key, value in record.items():
            if key in NOT_PLOTTED or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if math.isfinite(value):
                steps, values = out[key]
                steps.append(float(record["step"]))
                values.append(float(value))
    return dict(out)


def smooth(values: Sequence[float], weight: float = 0.9) -> list[float]:
    """Debiased exponential moving average (TensorBoard's smoothing)."""
    out, last, norm = [], 0.0, 0.0
    for v in values:
        last = weight * last + (1 - weight) * v
        norm = weight * norm + (1 - weight)
        out.append(last / norm)
    return out


def _spans_decades(values: Iterable[float]) -> bool:
    positive = [v for v in values if v > 0]
    return len(positive) > 1 and min(positive) > 0 and max(positive) / min(positive) >= 100


def plot_curves(
    metrics_path: Path, out_path: Path, checkpoint_steps: Sequence[int] = ()
) -> Path | None:
    """Draw ``out_path`` from ``metrics_path``; None when there is nothing to draw yet."""
    data = series(read_metrics(metrics_path))
    if not data:
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    panels: dict[str, list[str]] = defaultdict(list)
    for key in sorted(data):
        panels[family(key)].append(key)
    shown = [(fam, title) for fam, title in FAMILIES if panels.get(fam)]
    cols = 2 if len(shown) > 1 else 1
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(shown) :]:
        ax.set_visible(False)
    for ax, (fam, title) in zip(axes.flat, shown, strict=False):
        everything: list[float] = []
        for i, key in enumerate(panels[fam]):
            steps, values = data[key]
            everything += values
            colour = f"C{i % 10}"
            if len(values) > 2 and fam not in ("lr",):
                ax.plot(steps, values, color=colour, alpha=0.25, linewidth=0.8)
                ax.plot(steps, smooth(values), color=colour, linewidth=1.6, label=key)
            else:
                ax.plot(steps, values, color=colour, linewidth=1.6, label=key, marker=".")
        if _spans_decades(everything) and min(everything) > 0:
            ax.set_yscale("log")
        for step in checkpoint_steps:
            ax.axvline(step, color="0.6", linestyle=":", linewidth=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    if checkpoint_steps:
        fig.suptitle("dotted lines: checkpoints on disk", fontsize=8, color="0.4")
    fig.tight_layout()
    # the panels and their keys, readable without looking (tools, tests): PNG text chunk
    layout = json.dumps({title: panels[fam] for fam, title in shown})
    with atomic_path(out_path, fsync=False) as tmp:  # a viewer never sees half an image
        fig.savefig(tmp, dpi=90, format="png", metadata={"Description": layout})
    plt.close(fig)
    return out_path
