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
    """A config value is missing or wrong; the message names the key to set.

    Classes and functions raise it with the name of their own argument (``lr``; ``optimizer.lr`` for a key of a
    mapping argument): they know their arguments, not where a config puts them. The code that takes the value
    from a config re-raises it under the config node (``utils.hydra.config_node``): ``stage.module.optimizer.lr``.
    """

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"config key '{key}': {message}")

    def under(self, node: str) -> ConfigError:
        """The same error with its key inside ``node`` (``optimizer`` and ``lr``: ``optimizer.lr``)."""
        return ConfigError(f"{node}.{self.key}" if node else self.key, self.message)
