"""Decoded training frames on disk, so that random access during training needs no seek into a video.

A data set's frames are read in random order during training (shuffled batches); for a video, every read re-opens it,
seeks to the nearest key frame and decodes up to the frame (hundreds of ms at 1024 px for H.264, against a few ms
reading in order). :class:`FrameCache` decodes the frames a data set uses once, in order (one pass per sequence), into
an uncompressed ``.npy`` file (uint8, N x H x W x 3, RGB as ``FramesBase.read_rgb`` returns it), which training
memory-maps read-only: a read is a copy of one row.

The file is keyed by the content of the sequence's frames (``identity.frames_identity``, plus the files' times as a
guard against an edit that keeps a large video's size and ends), the exact frame list, the OpenCV version that decoded
them and :data:`FORMAT_VERSION`: a changed video or frame list gets a new file, never a stale one. It is written
atomically (``utils.io.atomic_open``: a temporary tagged with the writer's pid, renamed into place), one frame at a
time (memory does not grow with the video's length), under a lock per key (``utils.locks.FolderLock``): a second
process that needs the same frames waits for the first and then reads its file. A file of the wrong size or shape (cut
short, written by other code) is rebuilt, with a warning naming it. Old keys are never deleted: the folder may be
emptied at any time.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from samqa_framework.data.identity import frames_identity
from samqa_framework.data.sequence import Sequence
from samqa_framework.utils.errors import DataFormatError
from samqa_framework.utils.io import atomic_open
from samqa_framework.utils.locks import FolderLock, LockedError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # bump when what a row holds changes (colour order, layout)
FILE = "frames.npy"
_SPARE_BYTES = 1 << 30  # left free on the disk after a cache is written


def cache_key(sequence: Sequence, frames: Iterable[int]) -> str:
    """What the cached frames of ``frames`` (0-based, sorted, unique) of ``sequence`` depend on, as a short hash."""
    path, _ = sequence.frames_location()
    entries = sorted(os.scandir(path), key=lambda e: e.name) if path.is_dir() else [os.stat(path)]
    times = [e.stat().st_mtime_ns if isinstance(e, os.DirEntry) else e.st_mtime_ns for e in entries]
    h = hashlib.sha256()
    h.update(f"v{FORMAT_VERSION}|cv2 {cv2.__version__}|{frames_identity(sequence)}|".encode())
    h.update(np.asarray(times, dtype=np.int64).tobytes())
    h.update(np.asarray(list(frames), dtype=np.int64).tobytes())
    return h.hexdigest()[:24]


class FrameCache:
    """Frames ``frames`` of one sequence as rows of a read-only memory map (opened lazily, once per process)."""

    def __init__(self, path: Path, frames: np.ndarray, shape: tuple[int, int, int, int]) -> None:
        self.path = path
        self.frames = frames
        self.shape = shape
        self._rows = {int(f): i for i, f in enumerate(frames)}
        self._map: tuple[int, np.memmap] | None = None  # (pid that opened it, the map)

    @classmethod
    def ensure(cls, folder: str | os.PathLike[str], sequence: Sequence, frames: Iterable[int]) -> FrameCache | None:
        """The cache of ``frames`` of ``sequence`` under ``folder``, decoded now unless a valid file is there; None
        (with a warning: training then reads the video) when the disk has no room for it."""
        wanted = np.unique(np.asarray(list(frames), dtype=np.int64))
        source = sequence.frames()
        if not len(wanted) or wanted[0] < 0 or wanted[-1] >= len(source):
            raise IndexError(f"{source.path}: frames to cache must lie in 0..{len(source) - 1}")
        shape = (len(wanted), int(source.height), int(source.width), 3)
        key_dir = Path(folder) / cache_key(sequence, wanted)
        cache = cls(key_dir / FILE, wanted, shape)
        if cache.problem() is None:
            return cache
        lock = FolderLock(key_dir, f"the frame cache of {sequence.name}", wait=False)
        try:
            lock.acquire()
        except LockedError as exc:  # two jobs training on one data set: wait, then read what the other wrote
            log.info("%s; waiting for it", exc)
            lock = FolderLock(key_dir, lock.what, wait=True).acquire()
        with lock:
            problem = cache.problem()
            if problem is None:
                return cache
            if cache.path.exists():
                log.warning("frame cache %s is unusable (%s): rebuilding it", cache.path, problem)
                cache.path.unlink()  # its room is needed for the new one
            need = int(np.prod(shape)) + _SPARE_BYTES
            free = shutil.disk_usage(key_dir).free
            if need > free:
                log.warning("frame cache for %s needs %.1f GB but %s has %.1f GB free: reading the video instead "
                            "(set frame_cache_dir to another folder, or null)", sequence.name, need / 1e9, key_dir,
                            free / 1e9)
                return None
            cache._build(sequence)
        return cache

    def problem(self) -> str | None:
        """Why the file cannot be used (absent, unreadable, another shape or type), or None."""
        if not self.path.is_file():
            return "absent"
        try:
            mm = np.lib.format.open_memmap(self.path, mode="r")
        except (OSError, ValueError, EOFError) as exc:
            return f"{type(exc).__name__}: {exc}"
        if mm.dtype != np.uint8 or mm.shape != self.shape:
            return f"holds {mm.dtype} {mm.shape}, expected uint8 {self.shape}"
        return None

    def _build(self, sequence: Sequence) -> None:
        """Decode the frames in one pass (every ``step``-th frame between the first and last wanted; the others are
        skipped by the reader) and stream them into the file, one frame at a time."""
        frames = self.frames
        step = int(np.gcd.reduce(np.diff(frames))) if len(frames) > 1 else 1
        start, stop = int(frames[0]), int(frames[-1]) + 1
        wanted = set(frames.tolist())
        t0 = time.perf_counter()
        written = 0
        with atomic_open(self.path, "wb") as fh:
            header: dict[str, Any] = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
                                      "fortran_order": False, "shape": self.shape}
            np.lib.format.write_array_header_1_0(fh, header)
            for index, bgr in zip(range(start, stop, step), sequence.frames().iter_range(start, stop, step),
                                  strict=True):
                if index not in wanted:
                    continue
                if bgr.shape != self.shape[1:]:
                    raise DataFormatError(sequence.root, f"frame {index + 1} is {bgr.shape[1]}x{bgr.shape[0]}, the "
                                          f"first is {self.shape[2]}x{self.shape[1]}: the frame cache needs one size")
                fh.write(np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).data)
                written += 1
            if written != len(frames):  # a reader that ended early: never rename a short file into place
                raise DataFormatError(sequence.root, f"decoded {written} of the {len(frames)} frames to cache")
        log.info("frame cache %s: %d frames of %s decoded in %.1f s", self.path, written, sequence.name,
                 time.perf_counter() - t0)

    def row(self, frame: int) -> int:
        """The row holding 0-based ``frame``."""
        return self._rows[frame]

    def read(self, row: int) -> np.ndarray:
        """Row ``row`` as an (H, W, 3) uint8 RGB array of its own (not a view of the map)."""
        if self._map is None or self._map[0] != os.getpid():  # a forked worker opens its own
            self._map = (os.getpid(), np.lib.format.open_memmap(self.path, mode="r"))
        return np.array(self._map[1][row])

    def __getstate__(self) -> dict[str, Any]:
        # a data-loader worker started by pickling gets the path, not the mapped data
        return {**self.__dict__, "_map": None}
