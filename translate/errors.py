"""User-facing error types.

Every error a user can cause (bad data, a bad checkpoint, a bad option) is a ``TranslateError``:
the CLI prints its message as one line and exits with code 2, without a traceback. Messages name
the file or field and the problem.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


class TranslateError(Exception):
    """Base class for errors caused by user input. ``exit_code`` is what the CLI returns."""

    exit_code = 2

    def __str__(self) -> str:  # one line, always
        text = super().__str__()
        if "Original Traceback" in text:  # re-raised from a DataLoader worker: keep our message
            last = text.strip().splitlines()[-1]
            text = last.split(": ", 1)[1] if last.startswith(("translate.", "DataError")) else last
        return " ".join(text.split("\n")).strip()


class ConfigError(TranslateError):
    """An invalid configuration value; the message names the field."""


class DataError(TranslateError):
    """A missing, empty or unreadable data folder or image; the message names the file."""


class CheckpointError(TranslateError):
    """A missing, truncated or incompatible checkpoint; the message names the path."""


class PluginError(TranslateError):
    """A plugin that cannot be found or does not satisfy the plugin contract."""


class TrainingDiverged(TranslateError):
    """A loss became NaN or infinite; the run saved what it could and stopped."""


class ExportError(TranslateError):
    """The exporter failed, or ONNX Runtime disagrees with PyTorch; nothing was written."""

    exit_code = 3


class OutputError(TranslateError):
    """A file or folder could not be written (read-only, not a folder, disk full); nothing
    partial was left and no earlier file was changed. The message names the path."""


class DiskFull(OutputError):
    """The disk (or the user's quota) filled up during a write: not a mistake in the input, so
    its own exit code, 74 (``EX_IOERR`` of sysexits.h), lets scripts and schedulers tell it
    from a bad option (2). Nothing partial was left; the previous version is intact."""

    exit_code = 74


def refuse_existing(paths: Iterable[Path], *, overwrite: bool) -> None:
    """The one refusal to replace an earlier output: an ``OutputError`` naming the first of
    ``paths`` that exists, unless ``overwrite``."""
    if overwrite:
        return
    for path in paths:
        if path.exists():
            raise OutputError(f"{path}: exists; pass --overwrite to replace it")


def flag(name: str) -> str:
    """A config field or option name as its command-line flag: ``tile_size`` -> ``--tile-size``."""
    return "--" + name.lstrip("-").replace("_", "-")


def unknown_option(
    name: str,
    options: Iterable[str],
    *,
    core: Iterable[str] = (),
    owner: str = "this model",
) -> ConfigError:
    """The one error for an option nobody knows, with a did-you-mean over the plugin's
    ``options`` and the command's ``core`` options alike (``--tile`` -> ``--tile-size``).
    Names may be given as fields (``tile_size``) or flags (``--tile-size``)."""
    given = flag(name)
    own = sorted({flag(o) for o in options})
    candidates = sorted(set(own) | {flag(c) for c in core})
    bare = {c[2:]: c for c in candidates}  # compared without "--", which every name shares
    close = [bare[c] for c in difflib.get_close_matches(given[2:], list(bare), n=2, cutoff=0.6)]
    close += [c for c in candidates if c.startswith(given + "-") and c not in close]
    hint = f"; did you mean {' or '.join(close[:2])}?" if close else ""
    if len(own) > LISTED_OPTIONS:
        listing = f"{len(own)} options, see --help"
    else:
        listing = "options: " + (", ".join(own) or "none")
    return ConfigError(f"unknown option {given}{hint} ({owner}'s {listing})")


#: An unknown-option error lists the valid ones when there are at most this many.
LISTED_OPTIONS = 12
