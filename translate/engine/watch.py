"""Watching a run without a server: ``curves.png`` and (optionally) TensorBoard event files.

``RunWatch`` is fed by the training loop at its log, sample and checkpoint intervals:

- ``curves.png`` in the run folder, redrawn from ``metrics.jsonl`` at every sample interval and
  at the end (``translate.engine.curves``);
- TensorBoard (``--tensorboard``; on by default when the ``tensorboard`` package is installed,
  ``pip install "translate[tensorboard]"``): every logged scalar under ``<family>/<key>``, the
  sample grids as images, the run's configs as text. ``tensorboard --logdir runs/`` shows every
  run; nothing is needed while training. Event files live in ``<run>/tensorboard/``.

Only the process that writes the run's files (rank 0 under distributed training) makes one.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

from translate.engine.curves import family, plot_curves
from translate.errors import ConfigError, OutputError

log = logging.getLogger("translate.train")

CURVES = "curves.png"
TENSORBOARD_DIR = "tensorboard"


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def resolve_tensorboard(requested: bool | None) -> bool:
    """None (not given) means "when installed"; an explicit request needs the package."""
    if requested is None:
        return tensorboard_available()
    if requested and not tensorboard_available():
        raise ConfigError(
            "tensorboard: the tensorboard package is not installed; "
            'pip install "translate[tensorboard]" (or --no-tensorboard)'
        )
    return requested


class RunWatch:
    """The run's watchers: curves and TensorBoard, fed by the loop."""

    def __init__(
        self,
        run_dir: Path,
        *,
        tensorboard: bool,
        start_step: int,
        meta: dict[str, Any],
    ):
        self.run_dir = run_dir
        self.writer: Any = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step: a resumed run hides the events its interrupted part wrote after the
            # checkpoint it resumed from, so every step has one value, as in metrics.jsonl
            self.writer = SummaryWriter(
                str(run_dir / TENSORBOARD_DIR), purge_step=start_step if start_step else None
            )
            if not start_step:
                for key in ("plugin_config", "train_config", "gan_config"):
                    text = json.dumps(meta.get(key, {}), indent=2, default=str)
                    # indented: TensorBoard renders text as markdown; this keeps it verbatim
                    block = "\n".join("    " + line for line in text.splitlines())
                    self.writer.add_text(f"config/{key}", block, 0)

    def scalars(self, record: dict[str, Any]) -> None:
        """One ``metrics.jsonl`` record (after it was written)."""
        if self.writer is None:
            return
        step = int(record["step"])
        for key, value in record.items():
            if key in ("step", "time") or isinstance(value, bool):
                continue
            if isinstance(value, int | float):
                self.writer.add_scalar(f"{family(key)}/{key}", value, step)

    def samples(self, step: int, grid: Path) -> None:
        """A sample grid was written: show it in TensorBoard and redraw the curves."""
        if self.writer is not None:
            import numpy as np
            from PIL import Image

            with Image.open(grid) as image:
                pixels = np.asarray(image.convert("RGB"))
            self.writer.add_image("samples", pixels, step, dataformats="HWC")
            self.writer.flush()
        self.redraw()

    def checkpoint_steps(self) -> list[int]:
        steps = []
        for folder in (self.run_dir / "checkpoints").glob("step_*"):
            try:
                steps.append(int(folder.name.removeprefix("step_")))
            except ValueError:
                continue
        return sorted(steps)

    def redraw(self) -> None:
        try:
            plot_curves(
                self.run_dir / "metrics.jsonl", self.run_dir / CURVES, self.checkpoint_steps()
            )
        except (OSError, OutputError, ValueError) as exc:  # a plot never stops training
            log.warning("could not draw %s: %s", self.run_dir / CURVES, exc)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
