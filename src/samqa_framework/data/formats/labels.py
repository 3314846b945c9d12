"""One sequence's labels in a shape every format reads into and writes from: frames (1-based) -> animals (identity,
box, optional COCO RLE mask, score). A frame listed without animals was labelled empty; a frame not listed was not
labelled (e.g. manual labels every Nth frame)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from samqa_framework.data import rle
from samqa_framework.data.mot import MotTable


@dataclass
class Annotation:
    track_id: int
    box: np.ndarray  # left, top, width, height in pixels
    rle: rle.RLE | None = None
    score: float = 1.0

    def __post_init__(self) -> None:
        self.track_id = int(self.track_id)
        self.box = np.asarray(self.box, dtype=np.float64).reshape(4)


@dataclass
class SequenceLabels:
    name: str
    width: int  # 0: not known (a keypoint file says nothing of the frames)
    height: int
    frames: dict[int, list[Annotation]] = field(default_factory=dict)

    @classmethod
    def from_table(cls, name: str, width: int, height: int, boxes: MotTable, labelled: Iterable[int],
                   masks: Iterable[tuple[int, dict[int, rle.RLE]]] = ()) -> SequenceLabels:
        """From MOT rows (``conf`` = score), the labelled frame numbers and ``(frame, {id: rle})`` records."""
        out = cls(name, width, height, {int(f): [] for f in labelled})
        by_frame = dict(masks)
        for frame, rows in boxes.frame_slices():
            found = by_frame.get(frame, {})
            out.frames.setdefault(frame, []).extend(
                Annotation(int(i), b, found.get(int(i)), float(c))
                for i, b, c in zip(rows.track_id, rows.box, rows.conf, strict=True))
        out.frames = dict(sorted(out.frames.items()))
        return out

    def table(self, flag: bool = False) -> MotTable:
        """Every box as MOT rows; ``flag``: conf 1 (ground truth: every row counts) instead of the score."""
        rows = [(f, a.track_id, *a.box, 1.0 if flag else a.score) for f, anns in self.frames.items() for a in anns]
        arr = np.asarray(rows, dtype=np.float64).reshape(-1, 7)
        return MotTable(arr[:, 0], arr[:, 1], arr[:, 2:6], conf=arr[:, 6])

    def masks(self) -> Iterator[tuple[int, dict[int, rle.RLE]]]:
        """``(frame, {id: rle})`` of the frames with at least one mask, in order."""
        for frame, anns in self.frames.items():
            found = {a.track_id: a.rle for a in anns if a.rle is not None}
            if found:
                yield frame, found

    def window(self, start: int, stop: int, width: int, height: int) -> tuple[SequenceLabels, int]:
        """The frames ``start + 1 .. stop`` numbered from 1 (a split of the video ``[start, stop)``), boxes clipped
        to the ``width`` x ``height`` image; returns it and the number of boxes left out (wholly outside it)."""
        out = SequenceLabels(self.name, width, height)
        dropped = 0
        for frame, anns in self.frames.items():
            if not start < frame <= stop:
                continue
            kept = []
            for a in anns:
                x0, y0 = max(a.box[0], 0.0), max(a.box[1], 0.0)
                x1, y1 = min(a.box[0] + a.box[2], width), min(a.box[1] + a.box[3], height)
                if x1 - x0 <= 0 or y1 - y0 <= 0:
                    dropped += 1
                    continue
                kept.append(Annotation(a.track_id, [x0, y0, x1 - x0, y1 - y0], a.rle, a.score))
            out.frames[frame - start] = kept
        return out, dropped

    def most_at_once(self) -> int:
        return max((len(a) for a in self.frames.values()), default=0)

    @property
    def has_masks(self) -> bool:
        return any(a.rle is not None for anns in self.frames.values() for a in anns)


def number_in(name: str) -> int | None:
    """The last number in a file name's stem (``img0042.png`` -> 42), None without one."""
    found = re.findall(r"\d+", Path(name).stem)
    return int(found[-1]) if found else None


def trailing_id(label: str) -> int | None:
    """The identity at the end of a region label (``animal 3``, ``mouse_12``), None without one."""
    found = re.search(r"(\d+)\s*$", label)
    return int(found.group(1)) if found else None


class FrameFiles:
    """Frame numbers of image file names: a folder of frames' own files (position + 1, by natural order), matched by
    name or by the end of a name (Label Studio prefixes uploads with a hash: ``1a2b3c4d-frame_7.jpg``)."""

    def __init__(self, names: Iterable[str]) -> None:
        self.index = {Path(n).name: i + 1 for i, n in enumerate(names)}

    def frame(self, file_name: str) -> int | None:
        base = Path(str(file_name).split("?d=")[-1]).name
        if base in self.index:
            return self.index[base]
        hits = [f for n, f in self.index.items() if base.endswith(f"-{n}")]
        return hits[0] if len(hits) == 1 else None
