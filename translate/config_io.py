"""Configs to and from JSON, TOML and command-line values.

``config_to_dict`` / ``config_from_dict`` turn a config dataclass into a JSON-safe dict and back
(checkpoints store configs this way), ``coerce`` converts one value to a field's annotated type,
and ``load_config_file`` reads a ``--config`` file. Works on any dataclass; the configs
themselves live in ``translate.config``. No torch import.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

from translate.errors import ConfigError
from translate.fields import check_int_range

T = TypeVar("T")


def _to_json(value: Any, portable: bool = False) -> Any:
    if isinstance(value, Path):
        return value.name if portable else str(value)
    if isinstance(value, (tuple, list)):
        return [_to_json(v, portable) for v in value]
    return value


def config_to_dict(cfg: Any, *, portable: bool = False) -> dict[str, Any]:
    """A JSON-safe dict of a config dataclass (paths as strings, tuples as lists).

    ``portable``: each path reduced to its last component (``/home/me/data/facades`` ->
    ``facades``), for files that leave the training machine (exported models): they name what
    was used without revealing where it lay. The dict still loads with ``config_from_dict``.
    """
    return {f.name: _to_json(getattr(cfg, f.name), portable) for f in dataclasses.fields(cfg)}


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (tp, False)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def coerce(tp: Any, value: Any, field_name: str) -> Any:
    """Convert a JSON or CLI value to the field's annotated type, or raise ConfigError."""
    inner, optional = _strip_optional(tp)
    if value is None:
        if not optional:
            raise ConfigError(f"{field_name}: is required")
        return None
    origin = typing.get_origin(inner)
    try:
        if inner is Path:
            return Path(value)
        if inner is bool:
            if isinstance(value, str):
                low = value.lower()
                if low not in ("1", "0", "true", "false", "yes", "no"):
                    raise ConfigError(f"{field_name}: not a bool")
                return low in ("1", "true", "yes")
            return bool(value)
        if inner in (int, float, str):
            if inner is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            if inner is int:  # 2**64 fits no tensor: one line, not an overflow traceback
                return check_int_range(int(value), field_name)
            return inner(value)
        if origin is Literal:
            choices = typing.get_args(inner)
            if value not in choices:
                raise ConfigError(f"{field_name}: must be one of {', '.join(map(str, choices))}")
            return value
        if origin in (tuple, list):
            (elem, *_rest) = typing.get_args(inner) or (Any,)
            items = [value] if isinstance(value, (str, Path)) else list(value)
            return tuple(coerce(elem, v, field_name) for v in items)
    except (TypeError, ValueError):
        kind = getattr(inner, "__name__", inner)
        raise ConfigError(f"{field_name}: {value!r} is not a valid {kind}") from None
    return value


def field_types(cls: type) -> dict[str, Any]:
    """Resolved annotations of a dataclass (handles ``from __future__ import annotations``)."""
    return typing.get_type_hints(cls)


def config_from_dict(cls: type[T], values: dict[str, Any], *, base: T | None = None) -> T:
    """Build ``cls`` from ``values`` on top of ``base`` (or the defaults); unknown keys fail."""
    hints = field_types(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown option(s) {', '.join(unknown)}")
    converted = {k: coerce(hints[k], v, k) for k, v in values.items()}
    try:
        if base is not None:
            return dataclasses.replace(base, **converted)  # type: ignore[type-var]
        return cls(**converted)
    except TypeError as exc:  # a required field without a value
        missing = [
            f.name
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
            and f.name not in converted
        ]
        if missing:
            raise ConfigError(f"missing required option --{missing[0].replace('_', '-')}") from exc
        raise ConfigError(str(exc)) from exc


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a JSON or TOML file of options (flat, or sections named plugin/train/gan)."""
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table of options")
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat
