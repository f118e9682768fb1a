"""``translate runs``: a table of training runs, or one run's summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from translate.cli.errors import report_errors


def _losses_text(losses: dict[str, float], limit: int = 4) -> str:
    shown = list(losses.items())[:limit]
    more = f" (+{len(losses) - limit})" if len(losses) > limit else ""
    return " ".join(f"{k}={v:.3g}" for k, v in shown) + more


@report_errors
def runs_command(
    path: Annotated[
        Path,
        typer.Argument(help="A folder of runs (a table), or one run folder (its summary)."),
    ] = Path("runs"),
) -> None:
    """List training runs (plugin, steps, last losses, best eval metric, size, age), or show
    one run's summary with the paths of its latest samples and curves."""
    from rich.console import Console
    from rich.table import Table

    from translate.engine.summary import find_runs, human_age, human_size, is_run_dir, summarize
    from translate.errors import CheckpointError

    console = Console()
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such folder")
    if is_run_dir(path):
        s = summarize(path)
        planned = f" of {s.planned}" if s.planned else ""
        lines = [
            f"[bold]{s.path}[/bold]: {s.plugin}, step {s.step}{planned}",
            f"last losses: {_losses_text(s.losses, limit=99) or '-'}",
        ]
        if s.best is not None:
            metric, value, step = s.best
            lines.append(f"best {metric}: {value:.4g} at step {step}")
        lines += [
            f"latest checkpoint: {s.latest_checkpoint or '-'}",
            f"latest samples: {s.latest_samples or '-'}",
            f"curves: {s.curves or '-'}",
            f"size {human_size(s.size_bytes)}, last written {human_age(s.age_seconds)} ago",
        ]
        for line in lines:  # whole lines (a long path is not broken at 80 columns in a pipe)
            console.print(line, highlight=False, soft_wrap=True)
        return
    runs = find_runs(path)
    if not runs:
        console.print(f"no runs in {path}", highlight=False)
        return
    table = Table("run", "plugin", "steps", "last losses", "best eval", "size", "age")
    for run in runs:
        try:
            s = summarize(run)
        except CheckpointError as exc:
            table.add_row(str(run), "-", "-", f"[red]{exc}", "-", "-", "-")
            continue
        steps = f"{s.step}/{s.planned}" if s.planned else str(s.step)
        best = f"{s.best[0]}={s.best[1]:.4g}" if s.best else "-"
        table.add_row(
            str(run.relative_to(path)) if run != path else str(run),
            s.plugin,
            steps,
            _losses_text(s.losses),
            best,
            human_size(s.size_bytes),
            human_age(s.age_seconds),
        )
    console.print(table)
