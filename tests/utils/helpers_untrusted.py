"""Files that run code when loaded the unsafe way, as an attacker would write them; each leaves a marker file.

- :class:`WritesMarker`: a pickled object whose ``__reduce__`` creates ``marker`` (any code could run there).
- :func:`write_malicious_checkpoint`: ``torch.save`` of a payload (a state dict, a Lightning or YOLO checkpoint)
  with such an object inside it.

A test loads the file and asserts that it was refused and that the marker does not exist.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


class WritesMarker:
    """Unpickled in full, creates ``marker``."""

    def __init__(self, marker: str | os.PathLike[str]) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return exec, (f"import pathlib; pathlib.Path({self.marker!r}).touch()",)


def write_malicious_checkpoint(path: str | os.PathLike[str], marker: str | os.PathLike[str],
                               payload: dict[str, Any] | None = None, key: str = "extra") -> Path:
    """``payload`` (default: one tensor) with a :class:`WritesMarker` at ``key``, saved by ``torch.save``."""
    path = Path(path)
    torch.save({**(payload if payload is not None else {"weight": torch.zeros(2)}), key: WritesMarker(marker)}, path)
    return path
