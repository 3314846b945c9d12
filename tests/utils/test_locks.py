"""utils/locks.py: a folder written by one process; a second writer fails at once, naming the first."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from samqa_framework.utils.locks import FolderLock, LockedError

_HOLD = textwrap.dedent("""
    import sys, time
    from samqa_framework.utils.locks import FolderLock
    lock = FolderLock(sys.argv[1], "the test folder").acquire()
    print("locked", flush=True)
    time.sleep(60)
""")


def _holder(folder: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_process_is_refused_at_once_naming_the_holder(tmp_path: Path) -> None:
    proc = _holder(tmp_path)
    try:
        with pytest.raises(LockedError) as err:
            FolderLock(tmp_path, "the test folder").acquire()
        assert f"pid {proc.pid}" in str(err.value) and str(tmp_path) in str(err.value)
    finally:
        proc.kill()
        proc.wait()
    # the kernel dropped the dead holder's lock: the folder is free again
    with FolderLock(tmp_path, "the test folder"):
        assert (tmp_path / ".lock").read_text().startswith('{"pid": ' + str(os.getpid()))


def test_reentrant_within_a_process_and_released_by_the_last_holder(tmp_path: Path) -> None:
    outer = FolderLock(tmp_path, "x").acquire()
    inner = FolderLock(tmp_path, "x").acquire()  # the same process: no self-deadlock
    inner.release()
    code = ("import sys\nfrom samqa_framework.utils.locks import FolderLock, LockedError\n"
            "try:\n    FolderLock(sys.argv[1], 'x').acquire()\nexcept LockedError:\n    sys.exit(3)\n")
    assert subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False).returncode == 3  # still held
    outer.release()
    assert subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False).returncode == 0
