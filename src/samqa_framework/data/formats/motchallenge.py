"""MOTChallenge sequence folders, both ways: :func:`write_motchallenge` writes ``<seq>/gt/gt.txt`` (every box flag 1),
``<seq>/gt/masks.jsonl`` (COCO RLE, ours) and ``<seq>/seqinfo.ini`` linking the frames in place;
:func:`read_motchallenge` reads such a folder back (``data=motchallenge`` imports it as a data set). MOT has no list of
labelled frames: a frame labelled empty reads back as not labelled."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from samqa_framework.data import rle
from samqa_framework.data.formats.labels import SequenceLabels
from samqa_framework.data.mot import write_mot
from samqa_framework.data.sequence import Sequence
from samqa_framework.utils.io import atomic_dir


def write_motchallenge(dest: str | os.PathLike[str], labels: SequenceLabels, sequence: Sequence) -> Path:
    """``dest`` = a sequence folder of ``labels`` on ``sequence``'s frames (linked: ``video`` + ``videoStart``)."""
    location, start = sequence.frames_location()
    with atomic_dir(dest) as tmp:
        write_ground_truth(tmp, labels)
        replace(sequence.info, name=labels.name, video=str(location), video_start=start).write(tmp / "seqinfo.ini")
    return Path(dest)


def write_ground_truth(seq_dir: str | os.PathLike[str], labels: SequenceLabels) -> None:
    """``<seq_dir>/gt/gt.txt`` (every box flag 1: it counts) and, when there are masks, ``gt/masks.jsonl``."""
    seq_dir = Path(seq_dir)
    write_mot(seq_dir / "gt" / "gt.txt", labels.table(flag=True))
    if labels.has_masks:
        with rle.MaskWriter(seq_dir / "gt" / "masks.jsonl") as writer:
            for frame, masks in labels.masks():
                writer.write(frame, list(masks.items()))


def read_motchallenge(seq_dir: str | os.PathLike[str]) -> SequenceLabels:
    """A sequence folder's ground truth (rows of every flag, conf = the flag) with its masks, if any."""
    seq = Sequence(seq_dir)
    gt = seq.gt()
    masks = rle.iter_masks(seq.masks_path) if seq.has_masks() else ()
    return SequenceLabels.from_table(seq.name, seq.info.width, seq.info.height, gt, sorted(set(gt.frame.tolist())),
                                     masks)
