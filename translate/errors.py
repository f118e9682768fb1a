"""User-facing error types.

Every error a user can cause (bad data, a bad checkpoint, a bad option) is a ``TranslateError``:
the CLI prints its message as one line and exits with code 2, without a traceback. Messages name
the file or field and the problem.
"""

from __future__ import annotations


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
