"""``translate datasets list|fetch|demo``: data to train on (``translate.datasets``);
registered on the app in ``translate.cli.main``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from translate.cli.errors import report_errors

datasets_app = typer.Typer(
    rich_markup_mode=None,
    help="Data to train on: list and fetch the standard datasets, or write a synthetic demo set.",
    no_args_is_help=True,
)


@datasets_app.command("list")
@report_errors
def list_command() -> None:
    """The datasets translate datasets fetch knows: name, kind, contents, how to train on it."""
    from translate.datasets import CATALOG, datasets_dir

    root = datasets_dir()
    for e in CATALOG:
        where = f"  [fetched: {root / e.name}]" if (root / e.name).is_dir() else ""
        typer.echo(f"{e.name:24} {e.kind:9} {e.what}{where}")
        typer.echo(f"{'':24} {'':9} {e.url}")
    typer.echo(f"\ncache: {root} (TRANSLATE_DATA_DIR moves it); offline: translate datasets demo")


@datasets_app.command("fetch")
@report_errors
def fetch_command(
    name: Annotated[str, typer.Argument(help="A dataset of translate datasets list.")],
    dir: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Folder to fetch into. [default: the user cache's datasets folder]",
            show_default=False,
        ),
    ] = None,
    sha256: Annotated[
        str | None,
        typer.Option(
            help="Expected SHA-256 of the archive. [default: the one recorded on first download]",
            show_default=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Download again even if already fetched.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Download a dataset from its official release location (resumable: run it again after
    an interruption), check its checksum and unpack it; prints its folder."""
    from translate.datasets import fetch, find_dataset

    entry = find_dataset(name)
    folder = fetch(entry, root=dir, sha256=sha256, force=force, progress=progress)
    typer.echo(f"{entry.name}: {folder}", err=True)
    typer.echo(f"train: {entry.train.replace('DIR', str(folder.parent))}", err=True)
    typer.echo(str(folder))


@datasets_app.command("demo")
@report_errors
def demo_command(
    dir: Annotated[
        Path, typer.Argument(help="Folder to write (must not exist, or be empty).")
    ] = Path("demo"),
    train: Annotated[int, typer.Option(help="Training pairs.")] = 40,
    val: Annotated[int, typer.Option(help="Validation pairs.")] = 8,
    size: Annotated[int, typer.Option(help="Side of each half, in pixels.")] = 256,
    seed: Annotated[int, typer.Option(help="Random seed of the shapes.")] = 0,
) -> None:
    """Write a small synthetic paired set offline (label map -> photo of shapes, in the facades
    A|B layout with train/ and val/; inputs/ holds the validation label maps alone): train on
    it with --direction b2a."""
    from translate.datasets import write_demo

    folder = write_demo(dir, n_train=train, n_val=val, size=size, seed=seed)
    typer.echo(f"wrote {train} + {val} pairs to {folder}/train and {folder}/val", err=True)
    typer.echo(f"train: translate train pix2pix --data {folder} --direction b2a", err=True)
    typer.echo(f"then: translate run {folder}/inputs/000.png -c runs/<run>", err=True)
    typer.echo(str(folder))
