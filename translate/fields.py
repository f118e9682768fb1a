"""Dataclass field helpers shared by every config module (``translate.config``,
``translate.data.configs``, plugins' configs): a field with CLI help, and a one-line check.

This module must stay light: no torch import.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from translate.errors import ConfigError


def opt(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with CLI help text (``translate train PLUGIN --help`` shows it)."""
    return field(default=default, metadata={"help": help, **kwargs})


def check(cond: bool, field_name: str, message: str) -> None:
    """Raise ``ConfigError("<field>: <message>")`` unless ``cond``; for ``__post_init__``."""
    if not cond:
        raise ConfigError(f"{field_name}: {message}")


#: The integers every option and request field must fit in: a signed 64-bit integer (what
#: torch, numpy and ONNX Runtime take; Python's own ints are unbounded).
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
#: Seeds: 0 .. 2**63 - 1 (torch's generators take them; runs add rank and step offsets).
SEED_MAX = INT_MAX


#: Ranges of integer fields by name, wherever they appear (options, config files, requests).
NAMED_RANGES: dict[str, tuple[int, int]] = {"seed": (0, SEED_MAX)}


def check_int_range(
    value: int, field_name: str, lo: int | None = None, hi: int | None = None
) -> int:
    """``value`` when ``lo <= value <= hi``, else ``ConfigError("<field>: N is out of range
    (lo to hi)")``: the one range check of integer options, config files and request fields
    (a seed of 2**64 used to reach torch as an overflow traceback). The bounds default to
    the field's ``NAMED_RANGES`` entry, else a signed 64-bit integer's."""
    named = NAMED_RANGES.get(field_name.lstrip("-").replace("-", "_"), (INT_MIN, INT_MAX))
    lo = named[0] if lo is None else lo
    hi = named[1] if hi is None else hi
    if not lo <= value <= hi:
        raise ConfigError(f"{field_name}: {value} is out of range ({_bound(lo)} to {_bound(hi)})")
    return value


def _bound(n: int) -> str:
    if n == INT_MAX:
        return "2^63-1"
    if n == INT_MIN:
        return "-2^63"
    return str(n)
