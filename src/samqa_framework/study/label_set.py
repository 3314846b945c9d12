"""A label set as the study reads it: an annotation run's ``labels.txt`` + ``frames.txt`` for one training video.

Checked before any detector is trained, so that a broken label set fails in seconds with the file named, not
after an hour of training on nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from samqa_framework.annotate.store import LabelStore
from samqa_framework.data.mot import MotTable, read_mot
from samqa_framework.data.sequence import Sequence
from samqa_framework.utils.errors import DataFormatError


@dataclass
class LabelSet:
    sequence: Sequence
    boxes: MotTable          # the labels (rows of every labelled frame)
    labelled: list[int]      # labelled frame numbers (other frames were skipped: not negatives)
    labels_path: Path


def read_label_set(labels_dir: str | os.PathLike[str], sequence: Sequence, max_frames: int | None = None) -> LabelSet:
    """Read and check ``labels_dir`` (an annotation of ``sequence``).

    Refused, naming the file: a store that stops before the video's last frame (frames missing: the annotation
    did not finish), a missing or inconsistent ``frames.txt``, and a label set without a single box. ``max_frames``:
    the annotation covered only the video's first frames on purpose (quick runs).
    """
    root = Path(labels_dir)
    total = sequence.info.seq_length if max_frames is None else min(int(max_frames), sequence.info.seq_length)
    store = LabelStore.read(root)
    stored = sum(1 for _ in store.records())
    if stored != total:
        raise DataFormatError(store.path, f"labels stop at frame {stored} of {total} of {sequence.name}: frames "
                              f"are missing (resume the annotation, e.g. samqa-annotate out_dir={root.parent})")
    frames_path = root / "frames.txt"
    if not frames_path.is_file():
        raise DataFormatError(frames_path, "missing: the list of labelled frames (written by the label store's "
                              "export) tells skipped frames from empty ones")
    labelled = [int(t) for t in frames_path.read_text(encoding="utf-8").split()]
    bad = [f for f in labelled if not 1 <= f <= total]
    if bad:
        raise DataFormatError(frames_path, f"frame {bad[0]} is outside 1..{total} of {sequence.name}")
    labels_path = root / "labels.txt"
    if not labels_path.is_file():
        raise DataFormatError(labels_path, "missing: no labels were exported")
    boxes = read_mot(labels_path, num_frames=total)
    unlisted = sorted(set(boxes.frame.tolist()) - set(labelled))
    if unlisted:
        raise DataFormatError(labels_path, f"frame {unlisted[0]} has boxes but is not in {frames_path.name}")
    if not labelled or len(boxes) == 0:
        raise DataFormatError(labels_path, f"empty label set: no boxes in {len(labelled)} labelled frames of "
                              f"{sequence.name}; a detector cannot learn from it")
    return LabelSet(sequence, boxes, labelled, labels_path)
