"""Evaluation during training (``--eval-every N``, ``--keep-best METRIC``).

Every N steps the loop saves a checkpoint and runs the plugin's evaluation protocol on it
(``translate.evaluation``: the same code, translators and metrics as ``translate eval``) on the
plugin's validation data (``plugin.eval_data(cfg)``). The figures are logged to
``metrics.jsonl`` as ``eval_<metric>``; FID/KID and LPIPS need their weights files, given
through ``$TRANSLATE_INCEPTION_WEIGHTS`` / ``$TRANSLATE_LPIPS_WEIGHTS``. With ``--keep-best``,
the checkpoint with the best value so far is kept as ``checkpoints/best`` (a full checkpoint:
``translate run -c <run>/checkpoints/best``), which the pruning of old checkpoints never
removes. Lower is better, except for PSNR and SSIM.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

import torch

from translate.atomic import atomic_path
from translate.errors import ConfigError

log = logging.getLogger("translate.train")

PREFIX = "eval_"
BEST = "best"
HIGHER_IS_BETTER = ("psnr", "ssim")


def higher_is_better(metric: str) -> bool:
    return any(tag in metric.lower() for tag in HIGHER_IS_BETTER)


class PeriodicEval:
    """The plugin's protocol on its validation data, applied to a saved checkpoint."""

    def __init__(self, plugin: Any, plugin_cfg: Any, *, keep_best: str | None, device: str):
        if not callable(getattr(plugin, "evaluate", None)):
            raise ConfigError(f"eval_every: plugin {plugin.name} has no evaluation protocol")
        finder = getattr(plugin, "eval_data", None)
        self.folder: Path | None = finder(plugin_cfg) if callable(finder) else None
        if self.folder is None:
            raise ConfigError(
                f"eval_every: plugin {plugin.name} found no validation data for this config "
                "(e.g. a val/ split beside train/)"
            )
        self.plugin, self.plugin_cfg = plugin, plugin_cfg
        self.keep_best = keep_best.removeprefix(PREFIX) if keep_best else None
        self.device = device
        self.best: float | None = None

    def __call__(self, step: int, checkpoint: Path) -> dict[str, float]:
        """``eval_<metric>`` figures of ``checkpoint`` (global RNG untouched: exact resume)."""
        from translate.evaluation import EvalModels, MetricWeights, _as_eval_set, score

        weights = MetricWeights.resolve()
        with torch.random.fork_rng(devices=[]):
            models = EvalModels(checkpoint, device=self.device)
            evalset = _as_eval_set(self.plugin.evaluate(models, self.folder, self.plugin_cfg))
            result = score(evalset, self.folder, weights, "cpu")
        figures = {PREFIX + k: float(v) for k, v in result.means.items() if math.isfinite(float(v))}
        if self.keep_best is not None:
            self._keep_best(step, figures, checkpoint)
        return figures

    def _keep_best(self, step: int, figures: dict[str, float], checkpoint: Path) -> None:
        key = PREFIX + self.keep_best
        if key not in figures:
            listing = ", ".join(k.removeprefix(PREFIX) for k in figures) or "none"
            raise ConfigError(
                f"keep_best: no evaluation metric {self.keep_best!r}; this protocol gives: "
                f"{listing}"
            )
        value = figures[key]
        better = self.best is None or (
            value > self.best if higher_is_better(self.keep_best) else value < self.best
        )
        if not better:
            return
        self.best = value
        record = {"metric": self.keep_best, "value": value, "step": step}
        with atomic_path(checkpoint.parent / BEST, folder=True) as tmp:
            shutil.copytree(checkpoint, tmp, dirs_exist_ok=True)
            (tmp / "best.json").write_text(json.dumps(record) + "\n")
        target = checkpoint.parent / BEST
        log.info("best %s %.4g at step %d: %s", self.keep_best, value, step, target)

    def restore_best(self, checkpoints: Path) -> None:
        """A resumed run continues from the best value recorded so far."""
        record = checkpoints / BEST / "best.json"
        if self.keep_best is not None and record.is_file():
            data = json.loads(record.read_text())
            if data.get("metric") == self.keep_best:
                self.best = float(data["value"])
