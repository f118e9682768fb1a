"""CLI options generated from config dataclass fields (the configs are the source of truth).

Every generated option defaults to None ("not given"), so the engine can tell a user's choice
from a default: that is what lets ``--resume`` keep the checkpoint's settings, and lets a
plugin's own defaults (``train_defaults``) apply.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from translate.config_io import _strip_optional, coerce, config_to_dict, field_types
from translate.errors import ConfigError, unknown_option


def option_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def _annotation(tp: Any, choices: tuple[str, ...] | None) -> Any:
    """The typer annotation (without Optional) for a field type."""
    inner, _ = _strip_optional(tp)
    if choices:
        return Literal[tuple(choices)]  # type: ignore[valid-type]
    if typing.get_origin(inner) in (tuple, list):
        (elem, *_rest) = typing.get_args(inner)
        return list[elem]  # type: ignore[valid-type]
    return inner


def options_for(cls: type, defaults: Any | None = None) -> list[inspect.Parameter]:
    """One keyword-only typer option per dataclass field, defaulting to None ("not given");
    the help shows the effective (plugin-specific) default."""
    hints = field_types(cls)
    shown = config_to_dict(defaults) if defaults is not None else {}
    params: list[inspect.Parameter] = []
    for f in dataclasses.fields(cls):
        help_text = f.metadata.get("help", "")
        default = shown.get(f.name, f.default)
        if default is not None and default is not dataclasses.MISSING and default != ():
            help_text += f"  [default: {default}]"
        annotation = _annotation(hints[f.name], f.metadata.get("choices"))
        flag = option_name(f.name)
        decl = f"{flag}/--no-{flag[2:]}" if annotation is bool else flag
        # a list field is repeated (--data A --data B): its placeholder names one element
        elem = typing.get_args(annotation)[0] if typing.get_origin(annotation) is list else None
        metavar = None if elem is None else f"<{'path' if elem is Path else elem.__name__}>"
        option = typer.Option(decl, help=help_text, show_default=False, metavar=metavar)
        params.append(
            inspect.Parameter(
                f.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[annotation | None, option],
            )
        )
    return params


def given(values: dict[str, Any]) -> dict[str, Any]:
    """Drop options the user did not give (None, or an empty multiple option)."""
    return {k: v for k, v in values.items() if v is not None and v not in ((), [])}


def parse_extra_options(
    cls: type, args: list[str], *, core: Sequence[str] = (), owner: str = "this model"
) -> dict[str, Any]:
    """Parse ``--name value`` / ``--flag`` / ``--no-flag`` tokens against a dataclass; an
    unknown name suggests the closest of the dataclass's fields and the command's ``core``
    options (its own flags, which typer let through because it ignores unknown options)."""
    hints = field_types(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    i = 0
    while i < len(args):
        token = args[i]
        if not token.startswith("--"):
            raise ConfigError(f"unexpected argument {token!r}")
        key, _, inline = token[2:].partition("=")
        name = key.replace("-", "_")
        negated = name.startswith("no_") and name[3:] in fields
        if negated:
            name = name[3:]
        if name not in fields:
            raise unknown_option(key, fields, core=core, owner=owner)
        inner, _ = _strip_optional(hints[name])
        if inner is bool and not inline:
            values[name] = not negated
            i += 1
            continue
        if inline:
            raw = inline
            i += 1
        elif i + 1 < len(args):
            raw = args[i + 1]
            i += 2
        else:
            raise ConfigError(f"option --{key} needs a value")
        values[name] = coerce(hints[name], raw, name)
    return values
