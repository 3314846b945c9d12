"""Lazy frame sources (an mp4 or an ``img1/`` folder), a bounded read-ahead and an atomic video writer, on OpenCV.

Frames are decoded one at a time and never kept: memory does not grow with the video's length.
Frames are BGR ``uint8`` arrays (OpenCV's order); indices are 0-based, MOT frame numbers 1-based.
"""

from __future__ import annotations

import abc
import os
import queue
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from samqa_framework.utils.errors import DataFormatError
from samqa_framework.utils.io import AtomicStreamWriter

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def natural_key(path: Path) -> list[str | int]:
    """Sort key reading the numbers in a name as numbers: ``frame_2`` before ``frame_10`` (unpadded frame names)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


class FrameSource(Protocol):
    path: Path
    num_frames: int
    width: int
    height: int
    fps: float

    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[np.ndarray]: ...
    def read(self, index: int) -> np.ndarray: ...
    def iter_range(self, start: int = 0, stop: int | None = None, step: int = 1) -> Iterator[np.ndarray]: ...


class _LazyFrames(abc.ABC):
    """Shared sequence protocol: ``len``, iteration and ``read`` on top of a subclass's ``iter_range``."""

    num_frames: int
    path: Path

    def __len__(self) -> int:
        return self.num_frames

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.iter_range()

    @abc.abstractmethod
    def iter_range(self, start: int = 0, stop: int | None = None, step: int = 1) -> Iterator[np.ndarray]:
        """Decode frames ``start, start+step, ... < stop`` one at a time."""

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.num_frames:
            raise IndexError(f"{self.path}: frame index {index} outside 0..{self.num_frames - 1}")


class VideoReader(_LazyFrames):
    """Frames ``start .. start+length`` of a video file, decoded on demand."""

    def __init__(self, path: str | os.PathLike[str], start: int = 0, length: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataFormatError(self.path, "video file not found")
        cap = cv2.VideoCapture(str(self.path))
        try:
            if not cap.isOpened():
                raise DataFormatError(self.path, "cannot open video (unreadable or not a video)")
            total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            self.fps = float(cap.get(cv2.CAP_PROP_FPS)) or 30.0
            ok, _ = cap.read()
            if not ok or total <= 0 or self.width <= 0:
                raise DataFormatError(self.path, "video has no decodable frame")
        finally:
            cap.release()
        if start < 0 or start >= total:
            raise DataFormatError(self.path, f"start frame {start} is outside the video's {total} frames")
        self.start = start
        self.num_frames = total - start if length is None else min(length, total - start)

    def iter_range(self, start: int = 0, stop: int | None = None, step: int = 1) -> Iterator[np.ndarray]:
        stop = self.num_frames if stop is None else min(stop, self.num_frames)
        cap = cv2.VideoCapture(str(self.path))
        try:
            if self.start + start:
                cap.set(cv2.CAP_PROP_POS_FRAMES, self.start + start)
            for i in range(start, stop):
                if (i - start) % step == 0:
                    ok, frame = cap.read()
                else:
                    ok = cap.grab()
                    frame = None
                if not ok:
                    raise DataFormatError(self.path, f"frame {i + 1} cannot be decoded: the video is truncated "
                                          f"or corrupt (expected {self.num_frames} frames)")
                if frame is not None:
                    yield frame
        finally:
            cap.release()

    def read(self, index: int) -> np.ndarray:
        self._check_index(index)
        return next(self.iter_range(index, index + 1))


class ImageFolderReader(_LazyFrames):
    """An ``img1/`` folder of numbered images (MOTChallenge layout), read one file at a time."""

    def __init__(self, folder: str | os.PathLike[str], fps: float = 30.0, start: int = 0,
                 length: int | None = None) -> None:
        self.path = Path(folder)
        if not self.path.is_dir():
            raise DataFormatError(self.path, "image folder not found")
        files = sorted((p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_EXTS), key=natural_key)
        if not files:
            raise DataFormatError(self.path, "image folder holds no images")
        end = len(files) if length is None else min(len(files), start + length)
        self._files = files[start:end]
        self.num_frames = len(self._files)
        first = self.read(0)
        self.height, self.width = first.shape[:2]
        self.fps = fps

    def iter_range(self, start: int = 0, stop: int | None = None, step: int = 1) -> Iterator[np.ndarray]:
        stop = self.num_frames if stop is None else min(stop, self.num_frames)
        for i in range(start, stop, step):
            yield self.read(i)

    def check_files(self) -> None:
        """Every frame file starts and ends as its format must (a JPEG's SOI and EOI markers, a PNG's signature and
        IEND chunk...): a truncated or overwritten frame fails an import, naming the file, instead of the labelling
        run that reaches it. Reads a few bytes a file, so a folder of a million frames is checked in seconds; a file
        whose compressed data is damaged but whose ends are intact still passes (only decoding finds it)."""
        for index, path in enumerate(self._files):
            head, tail, size = _ends(path)
            kind = _image_kind(head)
            if kind is None:
                raise DataFormatError(path, f"frame {index + 1} is not an image (it starts with {head[:8].hex()})")
            if kind == "jpeg" and b"\xff\xd9" not in tail.rstrip(b"\x00\r\n "):
                raise DataFormatError(path, f"frame {index + 1}: the JPEG is cut short or damaged (no end-of-image "
                                      f"marker; {size} bytes)")
            if kind == "png" and b"IEND" not in tail:
                raise DataFormatError(path, f"frame {index + 1}: the PNG is cut short or damaged (no IEND chunk; "
                                      f"{size} bytes)")

    def read(self, index: int) -> np.ndarray:
        self._check_index(index)
        img = cv2.imread(str(self._files[index]), cv2.IMREAD_COLOR)
        if img is None:
            raise DataFormatError(self._files[index], f"frame {index + 1} cannot be decoded")
        return img


_SIGNATURES = ((b"\xff\xd8\xff", "jpeg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"BM", "bmp"), (b"II*\x00", "tiff"),
               (b"MM\x00*", "tiff"))


def _ends(path: Path, length: int = 32) -> tuple[bytes, bytes, int]:
    """The first and last ``length`` bytes of a file, and its size."""
    with open(path, "rb") as fh:
        head = fh.read(length)
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(size - length, 0))
        return head, fh.read(length), size


def _image_kind(head: bytes) -> str | None:
    return next((kind for sig, kind in _SIGNATURES if head.startswith(sig)), None)


class ReadAhead:
    """Frames ``start .. stop`` of ``source`` decoded on a reader thread into a queue of at most ``size`` frames.

    Iterating gives the frames of ``source.iter_range(start, stop)`` in order, so a consumer sees exactly what it would
    read inline, while the next frames are decoded during its own work (OpenCV releases the GIL while decoding).
    Memory is bounded: at most ``size`` frames wait in the queue and one more in the reader's hands. An error in the
    reader is raised by the consumer's ``next`` at the frame it stopped at, with a note naming the source (the
    frames before it are delivered first, as inline). :meth:`close` (also on leaving a ``with`` block) stops the
    reader, which finishes at most the frame it is decoding, and releases the source.
    """

    _POLL_S = 0.1  # how often a blocked reader or consumer looks whether the other side is gone

    def __init__(self, source: FrameSource, start: int, stop: int, size: int) -> None:
        if size < 1:
            raise ValueError(f"read-ahead size must be >= 1, got {size}")
        self.path = source.path
        self._next_index = start  # of the frame the consumer gets next (0-based, in the source)
        self._queue: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=size)
        self._closed = threading.Event()
        self._ended = False
        self._thread = threading.Thread(target=self._read, args=(source, start, stop), daemon=True,
                                        name=f"read-ahead {self.path.name}")
        self._thread.start()

    def _read(self, source: FrameSource, start: int, stop: int) -> None:
        frames = source.iter_range(start, stop)
        try:
            for frame in frames:
                if not self._put("frame", frame):
                    return
        except BaseException as exc:  # handed to the consumer, raised in its thread
            self._put("error", exc)
            return
        finally:
            if close := getattr(frames, "close", None):  # the decoder's handle is released here, however it ends
                close()
        self._put("end", None)

    def _put(self, kind: str, value: object) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put((kind, value), timeout=self._POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> ReadAhead:
        return self

    def __next__(self) -> np.ndarray:
        if self._ended:
            raise StopIteration
        while True:
            try:
                kind, value = self._queue.get(timeout=self._POLL_S)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    self._ended = True
                    raise RuntimeError(f"{self.path}: the read-ahead thread stopped without a frame or an error "
                                       "(closed while reading?)") from None
        if kind == "frame":
            self._next_index += 1
            return value  # type: ignore[return-value]
        self._ended = True
        self._thread.join()
        if kind == "error":
            assert isinstance(value, BaseException)
            value.add_note(f"(raised on the read-ahead thread while decoding frame {self._next_index + 1} of "
                           f"{self.path})")
            raise value
        raise StopIteration

    def close(self) -> None:
        """Stop the reader and wait for it (it finishes at most the frame it is decoding); frames not yet
        consumed are dropped. Safe to call twice."""
        self._closed.set()
        self._ended = True
        self._thread.join()
        while not self._queue.empty():  # drop the decoded frames now, not when the iterator is collected
            self._queue.get_nowait()

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_frames(source: FrameSource, start: int, stop: int, read_ahead: int = 0) -> Iterator[np.ndarray] | ReadAhead:
    """Frames ``start .. stop`` of ``source``: decoded inline (``read_ahead`` 0) or up to ``read_ahead`` frames ahead
    on a reader thread (:class:`ReadAhead`; close it, or the generator, when done)."""
    if read_ahead < 0:
        raise ValueError(f"read_ahead must be >= 0, got {read_ahead}")
    return ReadAhead(source, start, stop, read_ahead) if read_ahead else source.iter_range(start, stop)


class VideoWriter(AtomicStreamWriter):
    """Write frames to ``path`` through a temporary file renamed into place on a clean ``close``."""

    def __init__(self, path: str | os.PathLike[str], fps: float, size: tuple[int, int], codec: str = "mp4v") -> None:
        super().__init__(path)
        self._writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*codec), float(fps), size)
        if not self._writer.isOpened():
            raise DataFormatError(self.path, f"OpenCV cannot write video with codec {codec!r}")
        self.size = size
        self.count = 0

    def write(self, frame: np.ndarray) -> None:
        if frame.shape[1] != self.size[0] or frame.shape[0] != self.size[1]:
            raise ValueError(f"{self.path}: frame {self.count + 1} is {frame.shape[1]}x{frame.shape[0]}, "
                             f"expected {self.size[0]}x{self.size[1]}")
        self._writer.write(np.ascontiguousarray(frame))
        self.count += 1

    def _release(self) -> None:
        self._writer.release()
