"""``--help`` reads well in an 80-column terminal and in a pipe: for every command (each
plugin's ``train`` command included), every option name and its whole help text are shown, no
line is longer than 80 characters, nothing is cut with an ellipsis, and flags show no
``<bool>`` placeholder (``COLUMNS=80 translate train pix2pix --help | cat``)."""

from __future__ import annotations

import functools
import re

import click
import pytest
import typer
from typer.testing import CliRunner

from translate.cli.main import app

runner = CliRunner()


@functools.cache
def commands() -> list[tuple[list[str], click.Command]]:
    """Every command of the CLI as (argv prefix, command), walking the groups."""
    root = typer.main.get_command(app)
    found: list[tuple[list[str], click.Command]] = []

    def walk(path: list[str], cmd: click.Command) -> None:
        found.append((path, cmd))
        if isinstance(cmd, click.Group | typer.core.TyperGroup) and hasattr(cmd, "list_commands"):
            ctx = click.Context(cmd)
            for name in cmd.list_commands(ctx):
                walk([*path, name], cmd.get_command(ctx, name))

    walk([], root)
    return found


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.mark.parametrize(
    "path", [p for p, _ in commands()], ids=lambda p: " ".join(p) or "translate"
)
def test_help_at_80_columns_shows_every_option_whole(path: list[str]) -> None:
    cmd = dict((tuple(p), c) for p, c in commands())[tuple(path)]
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    text = result.output
    too_long = [line for line in text.splitlines() if len(line) > 80]
    assert not too_long, too_long
    assert "<bool>" not in text and "…" not in text and "\\[" not in text
    flat = squash(text)
    for param in cmd.params:
        if not isinstance(param, click.Option) or param.hidden:
            continue
        for name in (*param.opts, *param.secondary_opts):
            assert re.search(rf"(^|[\s,/]){re.escape(name)}([\s,/]|$)", text, re.M), name
        assert squash(param.help or "") in flat, f"{param.opts[0]}: help cut"
