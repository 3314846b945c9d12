"""Process-wide settings a task applies when it starts (``conf/extras``), as the lightning-hydra-template's extras.

``malloc``: whether glibc's allocator keeps freed memory for reuse. By default it serves every block over its mmap
threshold (at most 32 MiB) with a fresh mmap and unmaps it on free, so a training step that allocates gigabytes of
activations page-faults all of them in again, every step. ``mallopt`` is the C library's own switch for this; no
Python library exposes it (PyTorch's CPU performance guide swaps in jemalloc / tcmalloc with LD_PRELOAD instead,
which a notebook cannot do), hence the few lines of ctypes here.
"""

from __future__ import annotations

import ctypes
import logging
import platform
from collections.abc import Mapping
from typing import Any

from samqa_framework.utils.errors import ConfigError

log = logging.getLogger(__name__)

MALLOC_MODES = ("reuse", "system")
# mallopt(3) parameters and glibc's defaults (malloc/malloc.c: DEFAULT_MMAP_MAX, DEFAULT_TRIM_THRESHOLD)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_SETTINGS = {"reuse": ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1)),  # -1: never trim (mallopt(3))
             "system": ((_M_MMAP_MAX, 65536), (_M_TRIM_THRESHOLD, 128 * 1024))}
_state = {"malloc": "system"}


def _glibc() -> Any | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None


def set_malloc(mode: str) -> bool:
    """Switch glibc's allocator to ``mode`` (``reuse`` | ``system``) for the rest of the process; returns whether the
    allocator is glibc's (elsewhere nothing changes). Blocks allocated before keep how they were allocated."""
    if mode not in MALLOC_MODES:
        raise ConfigError("extras.malloc", f"{mode!r} is not one of {', '.join(MALLOC_MODES)}")
    mallopt = _glibc()
    if mallopt is None:
        log.debug("extras.malloc=%s: not glibc, the C allocator is left as it is", mode)
        return False
    if _state["malloc"] != mode:
        for param, value in _SETTINGS[mode]:
            if mallopt(param, value) != 1:
                log.warning("extras.malloc=%s: mallopt(%d, %d) refused; the allocator keeps its settings",
                            mode, param, value)
        _state["malloc"] = mode
    return True


def apply_extras(extras: Mapping[str, Any] | None) -> None:
    """Apply a task's ``extras`` node (absent or null: nothing changes)."""
    if not extras:
        return
    unknown = sorted(set(extras) - {"malloc"})
    if unknown:
        raise ConfigError(f"extras.{unknown[0]}", "unknown key; the only one is extras.malloc")
    if extras.get("malloc") is not None:
        set_malloc(str(extras["malloc"]))
