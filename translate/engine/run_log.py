"""What a run writes for people to watch: metrics.jsonl, sample grids, the progress bar."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

log = logging.getLogger("translate.metrics")

Reduce = Callable[[Mapping[str, float], Mapping[str, int]], tuple[dict, dict]]


class MetricsLog:
    """Averages per-step floats over an interval and appends one JSON line per interval.

    In a distributed run every rank keeps its sums; ``reduce`` (the engine's all-reduce) adds
    them up at each flush, so the logged values average over every rank's samples, and only the
    rank with ``write=True`` (rank 0) appends the line.
    """

    def __init__(self, path: Path, *, reduce: Reduce | None = None, write: bool = True):
        self.path = path
        self.reduce = reduce
        self.writes = write
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)  # per key: G logs skip critic-only steps
        self.count = 0
        self.last_time = time.perf_counter()
        self.last_record: dict[str, Any] = {}

    def add(self, values: Mapping[str, float | Tensor]) -> None:
        """One step's values: floats, or device scalars (``--deferred-sync``) that are summed
        on the device and read once per interval."""
        for key, value in values.items():
            if isinstance(value, Tensor):
                self.sums[key] = self.sums[key] + value.detach()  # type: ignore[assignment]
            else:
                self.sums[key] += float(value)
            self.counts[key] += 1
        self.count += 1

    def averages(self) -> dict[str, float]:
        sums, counts = self.sums, self.counts
        on_device = [k for k, v in sums.items() if isinstance(v, Tensor)]
        if on_device:  # one sync for every device sum
            read = torch.stack([sums[k].float() for k in on_device]).tolist()  # type: ignore[union-attr]
            sums = {**sums, **dict(zip(on_device, read, strict=True))}
        if self.reduce is not None:
            sums, counts = self.reduce(sums, counts)
        return {k: v / counts[k] for k, v in sums.items()}

    def flush(self, step: int, extra: dict[str, Any]) -> dict[str, float]:
        now = time.perf_counter()
        averages = self.averages()
        record = {
            "step": step,
            "time": time.time(),
            "steps_per_s": self.count / max(now - self.last_time, 1e-9),
            **extra,
            **averages,
        }
        self.write(record)
        self.sums.clear()
        self.counts.clear()
        self.count = 0
        self.last_time = now
        return averages

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (a flushed interval, or evaluation figures) as a JSON line."""
        if self.writes:
            from translate.atomic import write_error

            try:
                with open(self.path, "a") as fh:
                    fh.write(json.dumps(record) + "\n")
            except OSError as exc:  # a full disk: one line (a torn line is skipped on reading)
                raise write_error(self.path, exc) from exc
        self.last_record = record


def read_metrics_lines(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(line, record)`` for every readable record of a ``metrics.jsonl``: the one reader of
    the file (``translate runs``, ``curves.png``, ``--resume``). Lines that are not UTF-8, not
    JSON, or not an object with a numeric ``step`` (a line torn by a crash mid-write, a disk
    error) are skipped with one warning naming the file and how many were skipped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.warning("%s: cannot read (%s); no metrics shown", path, exc.strerror or exc)
        return []
    good: list[tuple[str, dict[str, Any]]] = []
    bad = 0
    for raw in data.splitlines():
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
            record = json.loads(line)
        except ValueError:  # UnicodeDecodeError is one
            bad += 1
            continue
        step = record.get("step") if isinstance(record, dict) else None
        if isinstance(step, bool) or not isinstance(step, int | float):
            bad += 1
            continue
        good.append((line, record))
    if bad:
        log.warning(
            "%s: skipped %d unreadable line%s (not UTF-8 or JSON; e.g. cut short by a crash)",
            path,
            bad,
            "" if bad == 1 else "s",
        )
    return good


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The readable records of a ``metrics.jsonl`` (``read_metrics_lines``)."""
    return [record for _, record in read_metrics_lines(path)]


def cut_metrics(path: Path, step: int) -> int:
    """Drop ``metrics.jsonl`` records after ``step`` (and unreadable lines, such as a torn last
    line): a run killed after its last checkpoint logged steps that its resume will log again.
    Returns lines dropped."""
    if not path.is_file():
        return 0
    total = sum(1 for raw in path.read_bytes().splitlines() if raw.strip())
    keep = [line for line, record in read_metrics_lines(path) if record["step"] <= step]
    if len(keep) != total:
        from translate.atomic import atomic_write_text

        atomic_write_text(path, "".join(line + "\n" for line in keep))
    return total - len(keep)


def save_grid(columns: list[Tensor], path: Path, caption: str | None = None) -> None:
    """Save a grid: one row per sample, one column per tensor; inputs are in [-1, 1]. A
    ``caption`` (a plugin's ``sample_caption``: progan's resolution and alpha) is written in a
    white strip above the grid."""
    from PIL import Image
    from torchvision.utils import make_grid

    rows = columns[0].shape[0]
    cells = []
    size = columns[0].shape[-2:]
    for r in range(rows):
        for col in columns:
            cell = col[r].detach().float().cpu()
            if cell.shape[0] == 1:
                cell = cell.expand(3, -1, -1)
            if cell.shape[-2:] != size:  # e.g. super-resolution outputs: show at one size
                cell = torch.nn.functional.interpolate(
                    cell[None], size=tuple(size), mode="bicubic"
                )[0]
            cells.append(cell[:3])
    grid = make_grid((torch.stack(cells) + 1) / 2, nrow=len(columns), padding=2, pad_value=1.0)
    image = Image.fromarray(
        grid.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    )
    if caption:
        from PIL import ImageDraw

        draw = ImageDraw.Draw(image)
        _, _, right, bottom = draw.textbbox((0, 0), caption)
        framed = Image.new("RGB", (max(image.width, right + 4), image.height + bottom + 4), "white")
        ImageDraw.Draw(framed).text((2, 2), caption, fill="black")
        framed.paste(image, (0, bottom + 4))
        image = framed
    from translate.atomic import atomic_path

    with atomic_path(path, fsync=False) as tmp:  # a full disk: one line, no half-written PNG
        image.save(tmp, format="png")


class Progress:
    """A rich progress bar on a terminal; occasional plain lines otherwise (CI logs, pipes)."""

    def __init__(self, total: int, start: int, enabled: bool):
        self.total = total
        self.enabled = enabled
        self.interactive = enabled and sys.stderr.isatty()
        self.bar: Any = None
        self.last_print = 0.0
        if self.interactive:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[losses]}"),
                transient=False,
            )
            self.task = self.bar.add_task("train", total=total, completed=start, rate="", losses="")
            self.bar.start()

    def update(self, step: int, rate: float, losses: dict[str, float]) -> None:
        text = " ".join(f"{k}={v:.3g}" for k, v in losses.items() if math.isfinite(v))
        if self.bar is not None:
            self.bar.update(self.task, completed=step, rate=f"{rate:.2f} steps/s", losses=text)
        elif self.enabled and time.monotonic() - self.last_print > 30:
            self.last_print = time.monotonic()
            print(f"step {step}/{self.total} {rate:.2f} steps/s {text}", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
