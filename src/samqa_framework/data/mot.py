"""MOTChallenge text files: read, validate, write.

Rows are ``frame, id, bb_left, bb_top, bb_width, bb_height[, conf[, class[, visibility]]]`` (6 to 9
columns, MOT16/17 ground-truth style) or 10 columns ``..., conf, x, y, z`` (MOT15 / tracker-result
style, world coordinates ignored). Frames are 1-based. In ground truth, ``conf`` is the evaluation flag
(0 = ignore the row); in predictions it is the detection score.

Written by hand because neither TrackEval nor motmetrics exposes a reader that validates a file and
names the offending line; TrackEval's own loader is used for evaluation.
"""

from __future__ import annotations

import math
import os
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from samqa_framework.utils.errors import DataFormatError
from samqa_framework.utils.io import atomic_open


@dataclass
class MotTable:
    """Column arrays of one MOT file, sorted by (frame, id)."""

    frame: np.ndarray  # (N,) int64, 1-based
    track_id: np.ndarray  # (N,) int64
    box: np.ndarray  # (N, 4) float64, left, top, width, height in pixels
    conf: np.ndarray = field(default=None)  # (N,) float64
    cls: np.ndarray = field(default=None)  # (N,) int64
    visibility: np.ndarray = field(default=None)  # (N,) float64

    def __post_init__(self) -> None:
        n = len(self.frame)
        self.frame = np.asarray(self.frame, dtype=np.int64).reshape(n)
        self.track_id = np.asarray(self.track_id, dtype=np.int64).reshape(n)
        self.box = np.asarray(self.box, dtype=np.float64).reshape(n, 4)
        self.conf = np.ones(n) if self.conf is None else np.asarray(self.conf, dtype=np.float64).reshape(n)
        self.cls = np.ones(n, np.int64) if self.cls is None else np.asarray(self.cls, dtype=np.int64).reshape(n)
        self.visibility = (np.ones(n) if self.visibility is None
                           else np.asarray(self.visibility, dtype=np.float64).reshape(n))
        order = np.lexsort((self.track_id, self.frame))
        if not np.all(order == np.arange(n)):
            for name in ("frame", "track_id", "box", "conf", "cls", "visibility"):
                setattr(self, name, getattr(self, name)[order])

    def __len__(self) -> int:
        return len(self.frame)

    @classmethod
    def empty(cls) -> MotTable:
        return cls(np.zeros(0), np.zeros(0), np.zeros((0, 4)))

    @classmethod
    def concat(cls, tables: list[MotTable]) -> MotTable:
        if not tables:
            return cls.empty()
        return cls(*(np.concatenate([getattr(t, n) for t in tables])
                     for n in ("frame", "track_id", "box", "conf", "cls", "visibility")))

    def select(self, mask: np.ndarray) -> MotTable:
        return MotTable(self.frame[mask], self.track_id[mask], self.box[mask], self.conf[mask], self.cls[mask],
                        self.visibility[mask])

    @property
    def xyxy(self) -> np.ndarray:
        b = self.box
        return np.stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]], axis=1)

    @property
    def ids(self) -> np.ndarray:
        return np.unique(self.track_id)

    @property
    def num_frames(self) -> int:
        return int(self.frame.max()) if len(self) else 0

    def frame_slices(self) -> Iterator[tuple[int, MotTable]]:
        """Yield ``(frame, rows of that frame)`` for every frame that has rows, in order."""
        if not len(self):
            return
        starts = np.flatnonzero(np.r_[True, np.diff(self.frame) != 0])
        ends = np.r_[starts[1:], len(self)]
        for s, e in zip(starts, ends, strict=True):
            yield int(self.frame[s]), self.select(slice(s, e))

    def rows_of(self, frame: int) -> MotTable:
        lo, hi = np.searchsorted(self.frame, [frame, frame + 1])
        return self.select(slice(lo, hi))


def _parse_line(text: str) -> list[str]:
    # Comma-separated (the MOTChallenge norm) keeps empty fields, so "1,2,,4,..." fails as "not a number"
    # instead of silently shifting the columns; whitespace-separated files are accepted too.
    if "," in text:
        parts = [t.strip() for t in text.strip().split(",")]
        return parts[:-1] if parts[-1] == "" else parts  # tolerate one trailing comma
    return text.split()


def read_mot(path: str | os.PathLike[str], num_frames: int | None = None,
             image_size: tuple[int, int] | None = None) -> MotTable:
    """Read and validate a MOT file.

    Raises DataFormatError naming the file and line for: bytes that are not UTF-8, a wrong column count (not
    6-10, or differing between rows), a non-number, NaN or infinite values, non-positive width/height, a frame
    below 1 or above ``num_frames``, or a repeated (frame, id) pair. ``image_size`` = (width, height) also checks
    that every box touches the image.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "file not found")
    rows = array("d")  # flat doubles: 8 bytes a value, not a Python float object each
    ncols = 0
    with open(path, "rb") as fh:  # decoded line by line: a bad byte is named by its line, not by a traceback
        for lineno, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataFormatError(path, f"not UTF-8 text (byte {exc.start + 1} of the line is "
                                      f"0x{raw[exc.start]:02x}): is this a MOT text file?", lineno) from None
            if not text.strip() or text.lstrip().startswith("#"):
                continue
            parts = _parse_line(text)
            if not 6 <= len(parts) <= 10:
                raise DataFormatError(path, f"expected 6 to 10 columns, found {len(parts)}", lineno)
            if not ncols:
                ncols = len(parts)
            elif len(parts) != ncols:
                raise DataFormatError(path, f"expected {ncols} columns like the first row, found {len(parts)}",
                                      lineno)
            try:
                vals = [float(p) for p in parts]
            except ValueError:
                raise DataFormatError(path, f"not a number in {text.strip()!r}", lineno) from None
            # every column must be finite, except the world coordinates of the 10-column format
            if not all(math.isfinite(v) for v in (vals[:7] if len(vals) == 10 else vals)):
                raise DataFormatError(path, "NaN or infinite value", lineno)
            frame, tid, _, _, w, h = vals[:6]
            if frame != int(frame) or frame < 1:
                raise DataFormatError(path, f"frame must be an integer >= 1, got {parts[0]}", lineno)
            if num_frames is not None and frame > num_frames:
                raise DataFormatError(path, f"frame {int(frame)} is beyond the sequence's {num_frames} frames",
                                      lineno)
            if tid != int(tid):
                raise DataFormatError(path, f"id must be an integer, got {parts[1]}", lineno)
            if w <= 0 or h <= 0:
                raise DataFormatError(path, f"box width and height must be positive, got {w:g} x {h:g}", lineno)
            if image_size is not None:
                x, y = vals[2], vals[3]
                if x >= image_size[0] or y >= image_size[1] or x + w <= 0 or y + h <= 0:
                    raise DataFormatError(path, f"box ({x:g}, {y:g}, {w:g}, {h:g}) lies outside the "
                                          f"{image_size[0]}x{image_size[1]} image", lineno)
            rows.extend(vals)
            rows.append(lineno)
    if not rows:
        return MotTable.empty()
    arr = np.frombuffer(rows, dtype=np.float64).reshape(-1, ncols + 1)
    conf = arr[:, 6] if ncols >= 7 else None
    cls = arr[:, 7] if ncols in (8, 9) else None
    vis = arr[:, 8] if ncols == 9 else None
    table = MotTable(arr[:, 0], arr[:, 1], arr[:, 2:6], conf, cls, vis)
    keys = table.frame * (table.track_id.max() - table.track_id.min() + 1) + (table.track_id - table.track_id.min())
    dup = np.flatnonzero(np.diff(keys) == 0)
    if len(dup):
        order = np.lexsort((arr[:, 1], arr[:, 0]))
        lineno = int(arr[order[dup[0] + 1], -1])
        raise DataFormatError(path, f"frame {table.frame[dup[0]]} has id {table.track_id[dup[0]]} twice", lineno)
    return table


def format_mot_rows(table: MotTable, columns: int = 9) -> str:
    """Render rows as text: 9 columns (ground truth) or 10 columns (tracker results, world coords -1)."""
    lines = []
    for i in range(len(table)):
        left, top, w, h = table.box[i]
        head = f"{table.frame[i]},{table.track_id[i]},{left:.2f},{top:.2f},{w:.2f},{h:.2f}"
        if columns == 9:
            lines.append(f"{head},{table.conf[i]:g},{table.cls[i]},{table.visibility[i]:.3f}\n")
        elif columns == 10:
            lines.append(f"{head},{table.conf[i]:.4f},-1,-1,-1\n")
        else:
            raise ValueError(f"columns must be 9 or 10, got {columns}")
    return "".join(lines)


def write_mot(path: str | os.PathLike[str], table: MotTable, columns: int = 9) -> None:
    """Write atomically (temporary file, then rename)."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(format_mot_rows(table, columns))
