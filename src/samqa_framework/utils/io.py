"""Atomic file writes: a reader never sees a half-written file, a crash leaves the old one intact."""

from __future__ import annotations

import abc
import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Self

from samqa_framework.utils.errors import ConfigError

# mkstemp/mkdtemp create 0600/0700 entries; without this, every file we "atomically" write would end up
# private to its owner instead of following the umask like an ordinary open() would. Read once at import
# (os.umask can only be read by setting it).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_orphans(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path.name), suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def atomic_write_json(path: str | os.PathLike[str], obj: Any, indent: int = 2) -> None:
    with atomic_open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=indent)
        fh.write("\n")


def check_output_folder(key: str, path: str | os.PathLike[str]) -> Path:
    """``path`` (config key ``key``) as a folder a task can write: it, or the nearest of its parents that exists, is a
    folder. Checked before any work, so an ``out_dir`` under a regular file fails now, naming the key, not after an
    hour of evaluation or training."""
    path = Path(path)
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            if not candidate.is_dir():
                where = "is a file" if candidate == path else f"lies under {candidate}, which is a file"
                raise ConfigError(key, f"{path} {where}, not a folder: choose another {key}")
            break
    return path


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a directory under a temporary name and move it into place when the block succeeds.

    An existing directory at ``path`` is replaced only after the new one is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _restore_old(path)
    clean_orphans(path.parent, path.name)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(path.name), suffix=".tmp", dir=path.parent))
    try:
        os.chmod(tmp, 0o777 & ~_UMASK)
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            _rmtree(old)
            os.replace(path, old)
            os.replace(tmp, path)
            _rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        _rmtree(tmp)
        raise


@contextlib.contextmanager
def atomic_files(folder: str | os.PathLike[str], unit: str) -> Iterator[Path]:
    """Write several files of ``folder`` as one unit (``metrics.json`` / ``.csv`` / ``.md``): the block writes them
    into a temporary folder, which is renamed to ``.<unit>.commit`` when the block succeeds (the commit point: one
    folder rename) and then emptied into ``folder``, file by file.

    An exception in the block, or a kill before the commit, leaves the old set as it was (the temporary is deleted
    now or by the next write of the unit); a kill after the commit leaves ``.<unit>.commit``, which the next write of
    the unit (or :func:`recover_files`) finishes moving first, so the files in place are never a mix of two writes
    once a writer has looked at the folder. Files already in ``folder`` that the block did not write stay.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    recover_files(folder, unit)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(unit), suffix=".tmp", dir=folder))
    try:
        os.chmod(tmp, 0o777 & ~_UMASK)
        yield tmp
        for entry in tmp.iterdir():  # durable before the commit: a crash after it must find whole files
            with open(entry, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, folder / f".{unit}.commit")
    except BaseException:
        _rmtree(tmp)
        raise
    _roll_forward(folder, folder / f".{unit}.commit")


def recover_files(folder: str | os.PathLike[str], unit: str) -> None:
    """Finish a write of ``unit`` (:func:`atomic_files`) that a crash interrupted after its commit, and delete the
    temporary folders of writes that never committed."""
    folder = Path(folder)
    commit = folder / f".{unit}.commit"
    if commit.is_dir():
        _roll_forward(folder, commit)
    clean_orphans(folder, unit)


def _roll_forward(folder: Path, commit: Path) -> None:
    for entry in sorted(commit.iterdir()):
        os.replace(entry, folder / entry.name)
    commit.rmdir()


def _tmp_prefix(name: str) -> str:
    # the writer's pid in the name: a temporary whose writer is gone is an orphan (killed), one whose writer lives may
    # be another process's write in progress and is left alone
    return f".{name}.{os.getpid()}."


def clean_orphans(folder: str | os.PathLike[str], name: str) -> list[Path]:
    """Delete the temporaries of writes of ``name`` into ``folder`` (``.<name>.<pid>.<random>.tmp``, files or folders)
    whose writer no longer runs on this machine: what a kill -9 of :func:`atomic_open`, :func:`atomic_dir` or
    :func:`atomic_files` leaves. Called by each of them before it writes; returns what was deleted."""
    folder = Path(folder)
    pattern = re.compile(rf"^\.{re.escape(name)}\.(\d+)\.[A-Za-z0-9_]+\.tmp$")
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            match = pattern.match(entry.name)
            if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
                _rmtree(Path(entry.path))
                removed.append(Path(entry.path))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _restore_old(path: Path) -> None:
    """A kill between :func:`atomic_dir`'s two renames leaves the previous folder as ``.<name>.old`` and nothing at
    ``path``: put it back (the new one never landed); with ``path`` in place, the old copy is a leftover."""
    old = path.with_name(f".{path.name}.old")
    if old.exists() or old.is_symlink():
        if path.exists() or path.is_symlink():
            _rmtree(old)
        else:
            os.replace(old, path)


def _rmtree(path: Path) -> None:
    import shutil

    # rmtree refuses symlinks (and ignore_errors would then silently keep them): unlink those and files.
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


class CommitOnExit(abc.ABC):
    """A writer used as a context manager: a clean exit of the block commits its output (``close``), an exception
    discards it (``abort``), leaving what was there before."""

    @abc.abstractmethod
    def close(self) -> None:
        """Finish the output and move it into place."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Drop the unfinished output."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class AtomicStreamWriter(CommitOnExit):
    """Base for writers that stream into ``.<name>.tmp`` and rename it to ``path`` on a clean close.

    Used as a context manager: an exception inside the block deletes the temporary file instead, so
    ``path`` is either the complete output or untouched. Subclasses open their sink on ``self.tmp`` and
    release it in ``_release``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.stem}.tmp{self.path.suffix}")

    @abc.abstractmethod
    def _release(self) -> None:
        """Flush and close the sink writing ``self.tmp``."""

    def close(self) -> None:
        self._release()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self._release()
        self.tmp.unlink(missing_ok=True)
