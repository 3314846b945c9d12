"""A sequence's ground truth served frame by frame, as :class:`FrameLabels` (masks streamed from disk)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from samqa_framework.annotate.base import FrameLabels, instance_from_rle
from samqa_framework.data import rle
from samqa_framework.data.mot import MotTable
from samqa_framework.data.sequence import Sequence
from samqa_framework.utils.errors import DataFormatError


class GroundTruthMissing(DataFormatError):
    """A sequence without ground truth (an unlabelled import) given to what plays the person with it."""


class GroundTruthFrames:
    """Ground-truth labels of increasing frames; rows flagged 0 (not to be labelled, e.g. hidden) are left out.

    Masks are read from ``gt/masks.jsonl`` one line at a time as frames are asked for, so memory does not grow
    with the sequence; asking for an earlier frame than the last one re-opens the file. A mask is decoded only when
    an instance's ``mask`` is used.
    """

    def __init__(self, sequence: Sequence, masks: bool = True) -> None:
        self.sequence = sequence
        if not sequence.has_gt():
            raise GroundTruthMissing(sequence.gt_path, f"sequence {sequence.name} has no ground truth, and the oracle "
                                     "prompts (prompts=oracle) and manual labels (annotator=manual) are made from it: "
                                     "let a person answer instead (prompts=queue)")
        gt = sequence.gt()
        self.table: MotTable = gt.select(np.asarray(gt.conf > 0))
        self.with_masks = masks and sequence.has_masks()
        self._masks: Iterator[tuple[int, dict[int, rle.RLE]]] | None = None
        self._current: tuple[int, dict[int, rle.RLE]] = (0, {})

    def _masks_of(self, frame: int) -> dict[int, rle.RLE]:
        if self._masks is None or frame < self._current[0]:
            self._masks, self._current = rle.iter_masks(self.sequence.masks_path), (0, {})
        while self._current[0] < frame:
            self._current = next(self._masks, (10**12, {}))
        return self._current[1] if self._current[0] == frame else {}

    def boxes(self, frame: int) -> dict[int, np.ndarray]:
        rows = self.table.rows_of(frame)
        return {int(i): b for i, b in zip(rows.track_id, rows.xyxy, strict=True)}

    def labels(self, frame: int, source: str = "manual") -> FrameLabels:
        masks = self._masks_of(frame) if self.with_masks else {}
        instances = [instance_from_rle(i, box, masks.get(i), 1.0, source) for i, box in self.boxes(frame).items()]
        return FrameLabels(frame, instances)
