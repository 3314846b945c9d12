"""An alternate signal stack roomy enough for the signal frames of a thread that uses AMX.

OpenVINO's CPU plugin (2026.4), when it starts, gives the calling thread its own alternate signal stack of
``AT_MINSIGSTKSZ + 8192`` bytes (20,144 here) and requests AMX for the process. Python installs its signal handlers
with ``SA_ONSTACK``, so a signal with a Python handler (torch's DataLoader sets one for SIGCHLD) is delivered on that
stack, and once the thread holds AMX state the kernel cannot fit the frame there: it kills the process with SIGSEGV
(si_code SI_KERNEL; seen as pytest dying in a later test's ``subprocess.run``). No library sizes the stack for us,
so :func:`ensure_roomy_alt_stack` swaps a too-small one for a larger one, one per thread, never freed.
"""

from __future__ import annotations

import ctypes
import functools
import sys
import threading

SS_ONSTACK, SS_DISABLE = 1, 2
AT_MINSIGSTKSZ = 51  # getauxval key: the kernel's minimum frame for the features enabled at exec (no AMX)
AMX_TILE_BYTES = 8192  # XTILEDATA, added to the frame once a thread uses AMX
MIN_BYTES = 64 * 1024

_local = threading.local()  # each thread's roomy stack, reused when a library swaps in a small one again
_never_freed: list[ctypes.Array] = []  # the kernel may write to a stack until the process ends (one per thread)


class _StackT(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.getauxval.restype = ctypes.c_ulong
    libc.getauxval.argtypes = [ctypes.c_ulong]
    return libc


def _current() -> _StackT:
    current = _StackT()
    if _libc().sigaltstack(None, ctypes.byref(current)) != 0:
        raise OSError(ctypes.get_errno(), "sigaltstack (query)")
    return current


def needed_bytes() -> int:
    """The stack this module gives a thread: room for several AMX frames (a handler may be interrupted)."""
    if not sys.platform.startswith("linux"):
        return MIN_BYTES
    return max(MIN_BYTES, 4 * (int(_libc().getauxval(AT_MINSIGSTKSZ)) + AMX_TILE_BYTES))


def alt_stack() -> tuple[bool, int]:
    """This thread's alternate signal stack: (enabled, size in bytes)."""
    current = _current()
    return not current.ss_flags & SS_DISABLE, int(current.ss_size)


def ensure_roomy_alt_stack() -> bool:
    """Give the calling thread a :func:`needed_bytes` alternate signal stack if it has a smaller one (Linux only;
    a thread without one delivers signals on its own stack, which is large). True when it swapped the stack."""
    if not sys.platform.startswith("linux"):
        return False
    current, size = _current(), needed_bytes()
    if current.ss_flags & (SS_DISABLE | SS_ONSTACK) or current.ss_size >= size:
        return False  # none, in use right now (inside a handler), or large enough
    buffer = getattr(_local, "stack", None)
    if buffer is None or len(buffer) < size:
        buffer = _local.stack = ctypes.create_string_buffer(size)
        _never_freed.append(buffer)
    roomy = _StackT(ctypes.addressof(buffer), 0, size)
    if _libc().sigaltstack(ctypes.byref(roomy), None) != 0:
        raise OSError(ctypes.get_errno(), f"sigaltstack ({size} bytes)")
    return True
