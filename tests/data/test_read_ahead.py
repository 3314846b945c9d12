"""ReadAhead: frames decoded on a reader thread give exactly the inline frames, memory stays bounded, errors reach
the consumer's thread naming the source, and the reader stops whenever the consumer does."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from samqa_framework.data.video import ImageFolderReader, ReadAhead, VideoReader, VideoWriter, iter_frames
from samqa_framework.utils.errors import DataFormatError


def _frame(i: int, w: int = 64, h: int = 48) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :, 0] = (i * 7) % 256
    img[i % h, :, 1] = 255
    return img


def _video(path: Path, n: int) -> Path:
    with VideoWriter(path, 25, (64, 48)) as w:
        for i in range(n):
            w.write(_frame(i))
    return path


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("read-ahead")]


class CountingSource:
    """A frame source that records how far it has decoded and whether its iterator was closed; ``fail_at``: the
    index whose decoding raises (as a truncated video's does)."""

    def __init__(self, n: int, fail_at: int | None = None, error: type[Exception] = DataFormatError) -> None:
        self.path = Path("/videos/counted.mp4")
        self.num_frames = n
        self.fail_at = fail_at
        self.error = error
        self.decoded = 0
        self.closed = threading.Event()

    def iter_range(self, start: int = 0, stop: int | None = None, step: int = 1) -> Iterator[np.ndarray]:
        try:
            for i in range(start, self.num_frames if stop is None else stop, step):
                if i == self.fail_at:
                    raise (self.error(self.path, f"frame {i + 1} cannot be decoded") if self.error is DataFormatError
                           else self.error("decoder crashed"))
                self.decoded += 1
                yield _frame(i)
        finally:
            self.closed.set()


@pytest.mark.parametrize("kind", ["video", "folder"])
@pytest.mark.parametrize(("start", "size"), [(0, 1), (3, 4), (9, 2)])
def test_the_frames_are_the_inline_frames_in_order(tmp_path: Path, kind: str, start: int, size: int) -> None:
    if kind == "video":
        source = VideoReader(_video(tmp_path / "v.mp4", 12))
    else:
        import cv2

        (tmp_path / "img1").mkdir()
        for i in range(12):
            cv2.imwrite(str(tmp_path / "img1" / f"{i + 1:06d}.png"), _frame(i))
        source = ImageFolderReader(tmp_path / "img1")
    inline = list(source.iter_range(start, 12))
    with ReadAhead(source, start, 12, size) as ahead:
        got = list(ahead)
    assert len(got) == len(inline) == 12 - start
    assert all(np.array_equal(a, b) for a, b in zip(got, inline, strict=True))
    assert not _reader_threads()


def test_the_reader_stays_at_most_size_plus_one_frames_ahead() -> None:
    source = CountingSource(100)
    with ReadAhead(source, 0, 100, 3) as ahead:
        first = next(ahead)
        deadline = time.monotonic() + 10
        while source.decoded < 5 and time.monotonic() < deadline:  # a slow consumer: the reader fills the queue
            time.sleep(0.01)
        time.sleep(0.3)  # ... then waits
        assert source.decoded == 1 + 3 + 1  # the consumed frame, a full queue, the one in the reader's hands
        assert np.array_equal(first, _frame(0))
        for i, frame in enumerate(ahead, start=1):
            assert np.array_equal(frame, _frame(i))
    assert source.decoded == 100 and source.closed.is_set()


@pytest.mark.parametrize("error", [DataFormatError, RuntimeError])
def test_a_decode_error_reaches_the_consumer_after_the_frames_before_it_naming_the_source(error: type) -> None:
    source = CountingSource(20, fail_at=7, error=error)
    got = []
    ahead = ReadAhead(source, 0, 20, 4)
    with pytest.raises(error) as err:
        for frame in ahead:
            got.append(frame)
    assert len(got) == 7  # every frame before the bad one, as inline
    text = str(err.value) + "".join(getattr(err.value, "__notes__", []))
    assert "counted.mp4" in text and "frame 8" in text
    assert not _reader_threads() and source.closed.is_set()  # the reader is gone and released the decoder
    with pytest.raises(StopIteration):
        next(ahead)


def test_a_truncated_video_read_ahead_names_the_file(tmp_path: Path) -> None:
    path = _video(tmp_path / "cut.mp4", 40)
    source = VideoReader(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # opened whole, cut before the reader decodes it
    with pytest.raises(DataFormatError) as err, ReadAhead(source, 0, 40, 4) as ahead:
        list(ahead)
    assert err.value.path == str(path) and "cut.mp4" in str(err.value)
    assert not _reader_threads()


def test_closing_early_stops_the_reader_and_releases_the_source() -> None:
    source = CountingSource(10_000)
    ahead = ReadAhead(source, 0, 10_000, 2)
    next(ahead)
    ahead.close()
    assert not _reader_threads() and source.closed.is_set()
    assert source.decoded <= 1 + 2 + 1
    ahead.close()  # twice is harmless
    with pytest.raises(StopIteration):
        next(ahead)


def test_an_exception_in_the_consumer_stops_the_reader() -> None:
    source = CountingSource(10_000)
    with pytest.raises(KeyboardInterrupt), ReadAhead(source, 0, 10_000, 4) as ahead:
        for i, _ in enumerate(ahead):
            if i == 5:
                raise KeyboardInterrupt
    assert not _reader_threads() and source.closed.is_set() and source.decoded < 20


def test_iter_frames_is_inline_at_zero_and_checks_its_size() -> None:
    source = CountingSource(5)
    inline = iter_frames(source, 1, 5, 0)
    assert not isinstance(inline, ReadAhead) and len(list(inline)) == 4 and not _reader_threads()
    with iter_frames(source, 0, 5, 2) as ahead:
        assert isinstance(ahead, ReadAhead) and len(list(ahead)) == 5
    with pytest.raises(ValueError, match="read_ahead must be >= 0"):
        iter_frames(source, 0, 5, -1)
    with pytest.raises(ValueError, match="size must be >= 1"):
        ReadAhead(source, 0, 5, 0)
