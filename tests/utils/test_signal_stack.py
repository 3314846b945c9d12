"""utils/signal_stack.py: a thread's too-small alternate signal stack is swapped for a roomy one, others are kept.

Run in a child interpreter: the test sets a small stack on its main thread, which must not stay in the pytest process.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

CHILD = """\
import ctypes

from samqa_framework.utils import signal_stack as ss

libc = ctypes.CDLL(None, use_errno=True)
small = ctypes.create_string_buffer(16384)
assert libc.sigaltstack(ctypes.byref(ss._StackT(ctypes.addressof(small), 0, 16384)), None) == 0
assert ss.alt_stack() == (True, 16384)
assert ss.ensure_roomy_alt_stack() is True
assert ss.alt_stack() == (True, ss.needed_bytes()), ss.alt_stack()
assert ss.ensure_roomy_alt_stack() is False  # already roomy: kept
first = ss._local.stack
assert libc.sigaltstack(ctypes.byref(ss._StackT(ctypes.addressof(small), 0, 16384)), None) == 0  # swapped again
assert ss.ensure_roomy_alt_stack() is True and ss._local.stack is first  # the thread's stack, reused
assert libc.sigaltstack(ctypes.byref(ss._StackT(None, ss.SS_DISABLE, 0)), None) == 0
assert ss.ensure_roomy_alt_stack() is False and ss.alt_stack()[0] is False  # none: signals use the thread's stack
print("OK", ss.needed_bytes())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sigaltstack / getauxval: Linux")
def test_a_small_alt_stack_is_replaced_and_a_roomy_or_missing_one_is_kept() -> None:
    run = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("OK ") and int(run.stdout.split()[1]) >= 64 * 1024
