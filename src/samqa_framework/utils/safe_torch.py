"""``torch.load`` of checkpoints from outside: weights only, never an unpickle that can run code.

``torch.load(weights_only=True)`` rebuilds tensors, containers and numbers only; a class or function named by the
pickle must be on an allow-list (``torch.serialization.safe_globals``). :data:`OWN_GLOBALS` is what our own files
need beyond torch's defaults. A file that needs more is refused (``UntrustedFileError`` naming the file, what it
needs and ``trust_checkpoint``); under ``trust_checkpoint=true`` it is unpickled in full, with a warning.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from samqa_framework.utils.errors import DataFormatError, UntrustedFileError
from samqa_framework.utils.trust import trusted, warn_trusted

# Classes our own checkpoints need beyond torch's defaults. None today, measured: our exports are flat state dicts,
# and the Lightning checkpoints of every stage hold tensors, containers and numbers only (the modules save their
# hyper-parameters as plain values). A writer of ours that starts pickling a class adds it here, never a function.
OWN_GLOBALS: tuple[type, ...] = ()

_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+)")


def _name(obj: type) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def unsafe_globals(path: str | os.PathLike[str]) -> list[str]:
    """The classes and functions a checkpoint in torch's zip format names beyond torch's defaults and
    :data:`OWN_GLOBALS` (read from its pickle without running it); ``[]`` for a file in another format."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except (ValueError, RuntimeError, OSError):  # not a torch.save zip archive (or none): torch.load tells the rest
        return []
    allowed = {_name(obj) for obj in OWN_GLOBALS}
    return sorted(set(names) - allowed)


def refusal(exc: pickle.UnpicklingError) -> str:
    """What a weights-only ``torch.load`` refused, in a few words, from torch's message."""
    names = list(dict.fromkeys(_GLOBAL_RE.findall(str(exc))))
    if names:
        return f"its pickle names {', '.join(names)}, not plain weights"
    detail = next((line.strip() for line in str(exc).splitlines()[1:] if "error" in line.lower()), "")
    return f"it holds pickled data a weights-only load refuses ({detail or type(exc).__name__})"


def load_torch_file(path: str | os.PathLike[str], what: str = "checkpoint") -> Any:
    """``torch.load`` of ``path`` on the CPU, weights only (see the module docstring).

    Raises ``UntrustedFileError`` for a file that needs more (unless trusted) and ``DataFormatError`` for a file
    that cannot be read at all; ``what`` names the kind of file in the message.
    """
    path = Path(path)
    try:
        with torch.serialization.safe_globals(list(OWN_GLOBALS)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" not in str(exc).lower():
            raise DataFormatError(path, f"cannot read as a PyTorch {what}: {exc}") from None
        names = unsafe_globals(path)  # every one, where torch's message names the first
        reason = f"its pickle names {', '.join(names)}, not plain weights" if names else refusal(exc)
        if not trusted():
            raise UntrustedFileError(path, f"cannot be loaded as plain weights: {reason}") from None
        warn_trusted(path, reason)
    except Exception as exc:
        raise DataFormatError(path, f"cannot read as a PyTorch {what}: {type(exc).__name__}: {exc}") from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise DataFormatError(path, f"cannot read as a PyTorch {what}: {type(exc).__name__}: {exc}") from exc


def check_torch_file(path: str | os.PathLike[str]) -> bool:
    """For a library that loads ``path`` itself (Lightning's resume): refuse it now if it names classes beyond plain
    weights, unless trusted. Returns the ``weights_only`` to load it with: False only for such a file, trusted."""
    names = unsafe_globals(path)
    if not names:
        return True
    what = f"its pickle names {', '.join(names)}, not plain weights"
    if not trusted():
        raise UntrustedFileError(path, f"cannot be loaded as plain weights: {what}")
    warn_trusted(path, what)
    return False
