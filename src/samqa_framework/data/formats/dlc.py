"""DeepLabCut keypoints (multi-animal or single-animal), read as DeepLabCut writes them: a pandas DataFrame with
the column levels scorer / individuals / bodyparts / coords, saved as CSV or HDF5 (``CollectedData_<scorer>.csv`` /
``.h5`` of ``labeled-data/<video>/``, or an analysed video's ``<video>DLC_<scorer>.h5`` with one row per frame).

Not through sleap-io: its DeepLabCut reader takes CSV only and drops every frame whose extracted image is not on disk,
while labels shared without their images are what an import beside the video needs. An animal's box is the box of
its visible keypoints grown by a margin (as for SLEAP: keypoints mark joints, not the outline); identities are the
individuals in header order, 1-based (``single``, maDLC's unique body parts, is no animal).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from samqa_framework.data.formats.labels import Annotation, FrameFiles, SequenceLabels, number_in
from samqa_framework.utils.errors import DataFormatError

log = logging.getLogger(__name__)


def keypoint_box(points: np.ndarray, margin_frac: float, margin_px: float) -> np.ndarray:
    """(left, top, w, h) around ``points`` (N, 2), grown by ``margin_frac`` of its size (half a side) and
    ``margin_px``; not clipped (the importer knows the image)."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    pad = margin_frac * (hi - lo) / 2 + margin_px
    return np.r_[lo - pad, hi - lo + 2 * pad]


def _read_frame(path: Path) -> pd.DataFrame:
    if path.suffix.lower() in (".h5", ".hdf5"):
        return pd.read_hdf(path)
    with open(path, encoding="utf-8") as fh:
        head = [fh.readline().split(",") for _ in range(5)]
    levels = 4 if head[1][0].strip() == "individuals" else 3
    # DeepLabCut >= 2.3 writes the image path as three index columns (labeled-data, video, image)
    index = [0, 1, 2] if len(head[levels]) > 0 and head[levels][0].strip() == "labeled-data" else 0
    return pd.read_csv(path, header=list(range(levels)), index_col=index)


def _where(entry: Any, path: Path, frame_files: FrameFiles | None) -> tuple[str, int]:
    """(video, 1-based frame) of a row: an extracted image ``img0042.png`` is the video's frame index 42 (0-based),
    unless it is one of the source's own frames; an analysed video's row number is its frame index."""
    if isinstance(entry, int | np.integer):
        return path.stem, int(entry) + 1
    parts = [str(p) for p in entry] if isinstance(entry, tuple) else Path(str(entry).replace("\\", "/")).parts
    image = parts[-1]
    video = parts[-2] if len(parts) >= 2 else path.parent.name
    if frame_files is not None and frame_files.frame(image) is not None:
        return video, frame_files.frame(image)
    number = number_in(image)
    if number is None:
        raise DataFormatError(path, f"row {entry!r}: no frame number in the image name")
    return video, number + 1


def read_dlc(path: str | os.PathLike[str], margin_frac: float = 0.1, margin_px: float = 4.0,
             frame_files: FrameFiles | None = None) -> list[SequenceLabels]:
    """The sequences (one per labelled video) of a DeepLabCut CSV or H5 file, boxes from keypoints."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "DeepLabCut file not found")
    try:
        df = _read_frame(path)
    except (OSError, ValueError, KeyError, IndexError, TypeError, ImportError) as exc:
        raise DataFormatError(path, f"not a DeepLabCut label file ({exc.__class__.__name__}: {exc})") from None
    names = list(df.columns.names)
    if df.columns.nlevels == 3:  # single-animal: scorer / bodyparts / coords
        df.columns = pd.MultiIndex.from_tuples([(c[0], "animal", c[1], c[2]) for c in df.columns])
    elif df.columns.nlevels != 4:
        raise DataFormatError(path, f"expected the column levels scorer, individuals, bodyparts, coords; got {names}")
    individuals = [i for i in dict.fromkeys(df.columns.get_level_values(1)) if i != "single"]
    sequences: dict[str, SequenceLabels] = {}
    skipped = 0
    for entry, row in df.iterrows():
        video, frame = _where(entry, path, frame_files)
        seq = sequences.setdefault(video, SequenceLabels(video, 0, 0))
        anns = []
        for track_id, individual in enumerate(individuals, start=1):
            try:
                sub = row.xs(individual, level=1)
                xs = sub.xs("x", level=2).to_numpy(dtype=np.float64)
                ys = sub.xs("y", level=2).to_numpy(dtype=np.float64)
            except KeyError:
                raise DataFormatError(path, f"individual {individual}: no x / y coordinates") from None
            points = np.stack([xs, ys], axis=1)
            points = points[np.isfinite(points).all(axis=1)]
            if len(points) < 2:  # fewer than 2 visible keypoints: no box (an animal out of view, or one point)
                skipped += len(points) == 1
                continue
            anns.append(Annotation(track_id, keypoint_box(points, margin_frac, margin_px)))
        if frame in seq.frames:
            raise DataFormatError(path, f"row {entry!r}: frame {frame} of {video} appears twice")
        seq.frames[frame] = anns
    if skipped:
        log.warning("%s: %d animal(s) with a single visible keypoint left out (no box)", path, skipped)
    for seq in sequences.values():
        seq.frames = dict(sorted(seq.frames.items()))
    return list(sequences.values())
