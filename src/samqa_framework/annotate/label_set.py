"""An annotation run's label set in the project's exchange formats, both ways: :class:`LabelSetWriter` exports it
from the label store's frames, :func:`read_label_set` reads it back, checked, for training a detector.

```
<out_dir>/labels.txt    MOT rows of every labelled frame, conf = the method's score (data/mot.py)
<out_dir>/masks.jsonl   the masks of every labelled frame, COCO RLE (data/rle.py)
<out_dir>/frames.txt    the labelled frame numbers, one a line, ascending
<out_dir>/sequence.json the sequence labelled: {"name", "root" (its folder), "frames" (how many the store covers)}
```

``frames.txt`` tells a frame the method skipped (e.g. manual labels every Nth frame) from a frame labelled empty:
only the listed frames may become training images, the empty ones as background.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from samqa_framework.annotate.base import FrameLabels
from samqa_framework.annotate.store import LabelStore
from samqa_framework.data import rle
from samqa_framework.data.mot import MotTable, read_mot, write_mot
from samqa_framework.data.sequence import Sequence
from samqa_framework.utils.errors import DataFormatError
from samqa_framework.utils.io import CommitOnExit, atomic_write_json, atomic_write_text

LABELS = "labels.txt"
MASKS = "masks.jsonl"
FRAMES = "frames.txt"
SEQUENCE = "sequence.json"


def write_frames(path: str | os.PathLike[str], frames: Iterable[int]) -> None:
    """``frames.txt``: one frame number a line (atomically)."""
    atomic_write_text(path, "".join(f"{int(f)}\n" for f in frames))


def read_frames(path: str | os.PathLike[str], num_frames: int) -> list[int]:
    """The frame numbers of a ``frames.txt``; a DataFormatError names the file and line of anything but one whole
    number a line, ascending, within 1..``num_frames``."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "missing: the list of labelled frames (written by the label set's export) tells "
                              "skipped frames from empty ones")
    frames: list[int] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                frame = int(text)
            except ValueError:
                raise DataFormatError(path, f"not a frame number: {text.strip()!r}", lineno) from None
            if not 1 <= frame <= num_frames:
                raise DataFormatError(path, f"frame {frame} is outside the sequence's frames 1..{num_frames}", lineno)
            if frames and frame <= frames[-1]:
                raise DataFormatError(path, f"frame {frame} after frame {frames[-1]}: each frame once, ascending",
                                      lineno)
            frames.append(frame)
    return frames


class LabelSetWriter(CommitOnExit):
    """Export frames (:meth:`add`, in order) into ``root``; on a clean exit of the ``with`` block the three files
    replace any earlier export, after an error none of them is touched."""

    def __init__(self, root: str | os.PathLike[str], cls: int = 1, sequence: Sequence | None = None) -> None:
        self.root = Path(root)
        self.cls = int(cls)  # MOT class of every row
        self.sequence = sequence  # recorded in sequence.json: an export finds the frames the labels belong to
        self._last = 0
        self.labels_path, self.masks_path = self.root / LABELS, self.root / MASKS
        self._rows: list[tuple[float, ...]] = []
        self._labelled: list[int] = []
        self._masks = rle.MaskWriter(self.masks_path)

    def add(self, labels: FrameLabels) -> None:
        """One frame; a skipped frame (``labelled`` False) is left out. Masks are written as stored (no decoding)."""
        self._last = max(self._last, labels.frame)
        if not labels.labelled:
            return
        self._labelled.append(labels.frame)
        with_masks = []
        for inst in labels.instances:
            x1, y1, x2, y2 = inst.box
            self._rows.append((labels.frame, inst.track_id, x1, y1, x2 - x1, y2 - y1, inst.score, self.cls, 1.0))
            encoded = inst.encoded_mask()
            if encoded is not None:
                with_masks.append((inst.track_id, encoded))
        self._masks.write(labels.frame, with_masks)

    def close(self) -> None:
        self._masks.close()
        arr = np.asarray(self._rows, dtype=np.float64).reshape(-1, 9)
        write_mot(self.labels_path, MotTable(arr[:, 0], arr[:, 1], arr[:, 2:6], conf=arr[:, 6], cls=arr[:, 7],
                                             visibility=arr[:, 8]))
        write_frames(self.root / FRAMES, self._labelled)
        if self.sequence is not None:
            atomic_write_json(self.root / SEQUENCE, {"name": self.sequence.name,
                                                     "root": str(self.sequence.root.resolve()), "frames": self._last})

    def abort(self) -> None:
        self._masks.abort()


@dataclass
class LabelSet:
    sequence: Sequence
    boxes: MotTable      # the labels: rows of the labelled frames, every box inside the image
    labelled: list[int]  # labelled frame numbers (other frames were skipped: not negatives)


def read_label_set(labels_dir: str | os.PathLike[str], sequence: Sequence, max_frames: int | None = None) -> LabelSet:
    """Read and check the label set in ``labels_dir`` (an annotation of ``sequence``) before any training.

    Refused, naming the file (and line): a label store that stops before the video's last frame (the annotation did
    not finish), a missing or malformed ``frames.txt`` or ``labels.txt``, a box outside the image, boxes on a frame
    not listed as labelled, and a label set without a single box. ``max_frames``: the annotation covered only the
    video's first frames on purpose (quick runs). Masks are not read.
    """
    root = Path(labels_dir)
    info = sequence.info
    total = info.seq_length if max_frames is None else min(int(max_frames), info.seq_length)
    store = LabelStore.read(root)
    stored = sum(1 for _ in store.records())  # the records' masks stay encoded: this costs JSON parsing only
    if stored < total:
        raise DataFormatError(store.path, f"labels stop at frame {stored} of {total} of {sequence.name}: frames "
                              f"are missing (resume the annotation, e.g. samqa-annotate out_dir={root.parent})")
    labelled = read_frames(root / FRAMES, total)
    labels_path = root / LABELS
    if not labels_path.is_file():
        raise DataFormatError(labels_path, "missing: no labels were exported")
    boxes = read_mot(labels_path, num_frames=total, image_size=(info.width, info.height))
    unlisted = sorted(set(boxes.frame.tolist()) - set(labelled))
    if unlisted:
        raise DataFormatError(labels_path, f"frame {unlisted[0]} has boxes but is not in {FRAMES}")
    if not labelled or len(boxes) == 0:
        raise DataFormatError(labels_path, f"empty label set: no boxes in {len(labelled)} labelled frames of "
                              f"{sequence.name}; a detector cannot learn from it")
    return LabelSet(sequence, boxes, labelled)


class SequenceRecord(NamedTuple):
    sequence: Sequence
    frames: int  # how many of its frames the label store covers (fewer with samqa-annotate max_frames=N)


def read_sequence_record(labels_dir: str | os.PathLike[str]) -> SequenceRecord:
    """The sequence a label set was made of (``sequence.json``); a DataFormatError names the file when it is missing
    or broken, or when the sequence folder it names is gone."""
    path = Path(labels_dir) / SEQUENCE
    if not path.is_file():
        raise DataFormatError(path, "missing: the label set does not say which sequence it labels (label sets made "
                              "before samqa-annotate wrote it: run the annotation again with the same out_dir)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        root, frames = Path(data["root"]), int(data["frames"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataFormatError(path, f"bad sequence record ({exc.__class__.__name__}: {exc})") from None
    if not root.is_dir():
        raise DataFormatError(path, f"the sequence folder {root} it names is gone")
    return SequenceRecord(Sequence(root), frames)
