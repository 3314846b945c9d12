"""Errors for bad user input. Each names the file (and line or frame) or the config key at fault."""

from __future__ import annotations

import os

# The config key that lets a loader run what a file needs to load it (a pickle's classes, a model yaml's expression,
# a sidecar's classes): off by default; set for the whole task (``api.run``).
TRUST_KEY = "trust_checkpoint"


class SamqaError(Exception):
    """Base class: the CLI prints these as one clear line and exits non-zero (no traceback)."""


class DataFormatError(SamqaError, ValueError):
    """A file does not follow its format; the message names the file and, where known, the line."""

    def __init__(self, path: str | os.PathLike[str], message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class UntrustedFileError(DataFormatError):
    """A file that would run code when loaded (a pickle naming classes or functions beyond plain weights, a model
    yaml with an expression, a sidecar naming classes): refused unless the user trusts it (``trust_checkpoint``).

    ``what`` says what the file needs; the message adds the key that trusts it. A file's error, not a config key's:
    it is reported as it is, wherever the loader sits in the config.
    """

    def __init__(self, path: str | os.PathLike[str], what: str, line: int | None = None) -> None:
        super().__init__(path, f"{what}; refused: loading it could run code. Only if you trust this file, set "
                               f"{TRUST_KEY}=true to load it anyway", line)


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


def check_number(key: str, value: object, low: float | None = None, high: float | None = None,
                 integer: bool = False) -> float | int:
    """``value`` as a number within [``low``, ``high``] (an int if ``integer``), else a :class:`ConfigError` on
    ``key`` saying what was expected: every range is checked where a value is read, never deep inside the work."""
    wanted = "an integer" if integer else "a number"
    if low is not None and high is not None:
        wanted += f" in [{low:g}, {high:g}]"
    elif low is not None:
        wanted += f" >= {low:g}"
    elif high is not None:
        wanted += f" <= {high:g}"
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not float(value).is_integer()):
        raise ConfigError(key, f"must be {wanted}, got {value!r}")
    number = int(value) if integer else float(value)
    if (low is not None and number < low) or (high is not None and number > high) or number != number:
        raise ConfigError(key, f"must be {wanted}, got {value!r}")
    return number
