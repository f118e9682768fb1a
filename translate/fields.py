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
