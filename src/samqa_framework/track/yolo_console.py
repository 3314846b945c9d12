"""What ultralytics prints during a training run: its own bars and summaries, one line per bar in a log.

``utils/offline.py`` sets ``YOLO_VERBOSE=false`` so that prediction and tracking stay quiet; a training run turns
ultralytics' logger back on for its duration. ultralytics redraws a bar every 0.1 s with a carriage return: fine on a
terminal, but redirected to a log file (Slurm, nohup) it is thousands of frames per epoch. There each bar becomes its
final line, plus at most one line per ``interval`` seconds while it runs (so a long epoch still shows progress).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

import ultralytics.utils as yolo_utils

_CLEAR = "\r\033[K"


class BarLines:
    """A stdout stand-in for ultralytics' bars: TQDM hands redraws to ``progress(bar_id, frame)`` instead of writing
    them, and calls ``progress(bar_id, "")`` when the bar closes (then writes the newline itself)."""

    def __init__(self, stream: TextIO, interval: float = 60.0) -> None:
        self.stream = stream
        self.interval = float(interval)
        self._last: dict[int, str] = {}
        self._written_at: dict[int, float] = {}

    def progress(self, bar_id: int, frame: str) -> None:
        now = time.monotonic()
        if frame:
            self._last[bar_id] = frame.removeprefix(_CLEAR)
            if now - self._written_at.setdefault(bar_id, now) >= self.interval:
                self.stream.write(self._last[bar_id] + "\n")
                self._written_at[bar_id] = now
            return
        self._written_at.pop(bar_id, None)
        self.stream.write(self._last.pop(bar_id, ""))  # the bar's final state; TQDM adds the newline

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, ... of the real stream
        return getattr(self.stream, name)


@contextlib.contextmanager
def ultralytics_console(verbose: bool = True, interval: float = 60.0) -> Iterator[None]:
    """Within the block: ultralytics logs at INFO (``verbose``) or ERROR, and bars are lines unless stdout is a tty."""
    logger = yolo_utils.LOGGER
    handlers = [h for h in logger.handlers if h.name == "ultralytics.utils.set_logging"]
    saved = yolo_utils.VERBOSE, logger.level, [h.level for h in handlers], sys.stdout
    level = logging.INFO if verbose else logging.ERROR
    yolo_utils.VERBOSE = verbose  # TQDM reads it when each bar is made
    logger.setLevel(level)
    for h in handlers:
        h.setLevel(level)
    tty = getattr(sys.stdout, "isatty", lambda: False)()
    if verbose and not tty:
        sys.stdout = BarLines(sys.stdout, interval)  # type: ignore[assignment]
    try:
        yield
    finally:
        yolo_utils.VERBOSE, level, handler_levels, sys.stdout = saved
        logger.setLevel(level)
        for h, lvl in zip(handlers, handler_levels, strict=True):
            h.setLevel(lvl)
