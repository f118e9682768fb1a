"""How every command reports user errors: one line, the error's exit code, no traceback.

Our own errors (``TranslateError``) come through ``report_errors``; click's (a bad value for
a typed option, an unknown option, a missing argument) through ``OneLineErrors``, the app's
group class, which prints them as ``error: --direction: 'x' is not one of 'a2b', 'b2a'``
instead of click's boxed usage panel. Both exit with code 2.
"""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from typer.core import TyperGroup

try:  # typer >= 0.24 parses with its own copy of click
    from typer._click import exceptions as click
except ImportError:  # pragma: no cover - older typer: click itself
    import click  # type: ignore[no-redef]

from translate.errors import TranslateError, unknown_option

F = TypeVar("F", bound=Callable[..., Any])

#: OS errors that come from the machine, not from a bug: a full disk or quota, a read-only
#: file system, a permission. Reported as one line (exit 74 for no space, else 2).
ENVIRONMENT_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def report_errors(func: F) -> F:
    """Turn user errors into one line on stderr and the error's exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TranslateError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:  # a write the code did not wrap: still one line, no traceback
            if exc.errno not in ENVIRONMENT_ERRORS:
                raise  # anything else is a bug: the traceback helps
            from translate.atomic import write_error

            error = write_error(Path(exc.filename or "output"), exc)
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def usage_error_line(exc: click.UsageError) -> str:
    """One line for a click usage error, naming the option or argument."""
    command = exc.ctx.command_path if exc.ctx is not None else "translate"
    if isinstance(exc, click.NoSuchOption):
        known = [o for p in exc.ctx.command.params for o in p.opts] if exc.ctx else []
        error = unknown_option(exc.option_name, [o for o in known if o.startswith("--")])
        return f"{str(error).split(' (', 1)[0]} ({command}: see --help)"
    message = " ".join(exc.format_message().split()).rstrip(".")
    param = getattr(exc, "param", None)
    if isinstance(exc, click.BadParameter) and param is not None:
        name = next((o for o in param.opts if o.startswith("--")), None) or (
            getattr(param, "human_readable_name", None) or str(param.name).upper()
        )
        message = " ".join(exc.message.split()).rstrip(".").removeprefix("Value error, ")
        if isinstance(exc, click.MissingParameter):
            kind = "option" if getattr(param, "param_type_name", "") == "option" else "argument"
            return f"missing {kind} {name} ({command}: see --help)"
        return f"{name}: {message}"
    return f"{message} ({command}: see --help)"


class OneLineErrors(TyperGroup):
    """The app's group: click's usage errors of any sub-command as one ``error:`` line, exit
    code 2 (click draws a boxed panel of six lines)."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            typer.echo(f"error: {usage_error_line(exc)}", err=True)
            raise typer.Exit(2) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            typer.echo(f"error: {usage_error_line(exc)}", err=True)
            raise typer.Exit(2) from None
