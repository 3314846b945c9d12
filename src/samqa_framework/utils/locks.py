"""Exclusive locks on folders that one process writes (a label store, a stage folder).

``fcntl.flock`` on a ``.lock`` file inside the folder: the kernel drops the lock when the holder dies (kill -9
included), so a crash never leaves a folder locked. The holder writes who it is into the lock file, and a second
writer fails at once with that in its message instead of interleaving its writes with the first. Within one
process the lock is re-entrant (flock locks belong to an open file, so a second ``open`` would lock the process
out of its own folder).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from samqa_framework.utils.errors import SamqaError

LOCK_FILE = ".lock"

_held: dict[str, tuple[IO[str], int]] = {}  # real path of a lock file -> (its open file, how many holders here)
_guard = threading.Lock()


class LockedError(SamqaError):
    """Another process writes this folder now; the message names it."""

    def __init__(self, folder: str | os.PathLike[str], what: str, holder: str) -> None:
        self.folder = str(folder)
        super().__init__(f"{folder}: {what} is being written by another process ({holder}); wait for it to end, "
                         f"or use another output folder")


def _holder() -> dict[str, object]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)[:300],
            "since": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _describe(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {info['pid']} on {info['host']} since {info['since']}: {info['command']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


class FolderLock:
    """``with FolderLock(folder, "the label store"):`` -- exclusive for the block, or :class:`LockedError` at once.

    ``wait=True`` blocks until the holder ends instead (jobs of one multirun that need the same stage: the second
    one then finds the first one's result).
    """

    def __init__(self, folder: str | os.PathLike[str], what: str, wait: bool = False) -> None:
        self.folder = Path(folder)
        self.what = what
        self.wait = wait
        self.path = self.folder / LOCK_FILE
        self._key: str | None = None

    def acquire(self) -> Self:
        self.folder.mkdir(parents=True, exist_ok=True)
        key = os.path.realpath(self.path)
        with _guard:
            if key in _held:
                fh, count = _held[key]
                _held[key] = (fh, count + 1)
                self._key = key
                return self
        fh = open(self.path, "a+", encoding="utf-8")  # held open for the lock's life
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
        except BlockingIOError:
            fh.close()
            raise LockedError(self.folder, self.what, _describe(self.path)) from None
        except BaseException:
            fh.close()
            raise
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(_holder()))
        fh.flush()
        with _guard:
            _held[key] = (fh, 1)
        self._key = key
        return self

    def release(self) -> None:
        if self._key is None:
            return
        with _guard:
            fh, count = _held[self._key]
            if count > 1:
                _held[self._key] = (fh, count - 1)
            else:
                del _held[self._key]
                with contextlib.suppress(OSError):  # the holder's line stays; the lock is what counts
                    fcntl.flock(fh, fcntl.LOCK_UN)
                fh.close()
        self._key = None

    def __enter__(self) -> Self:
        return self if self._key is not None else self.acquire()  # ``with lock.acquire():`` holds it once

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

