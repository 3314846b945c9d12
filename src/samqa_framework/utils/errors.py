"""Errors for bad user input. Each names the file (and line or frame) or the config key at fault."""

from __future__ import annotations

import os


class SamqaError(Exception):
    """Base class: the CLI prints these as one clear line and exits non-zero (no traceback)."""


class DataFormatError(SamqaError, ValueError):
    """A file does not follow its format; the message names the file and, where known, the line."""

    def __init__(self, path: str | os.PathLike[str], message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class ConfigError(SamqaError, ValueError):
    """A config value is missing or wrong; the message names the key to set."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"config key '{key}': {message}")
