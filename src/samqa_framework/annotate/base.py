"""The annotator interface: a method turns a video into per-frame instances, one frame at a time.

A run (``annotate.runner.annotate_sequence``) streams the frames, calls :meth:`Annotator.step` for each, appends
the result to the label store and hands it back through :meth:`Annotator.commit`. On resume the stored frames are
replayed through ``commit`` only, so an annotator keeps all the state it needs there (previous masks, reference
areas, the next free identity) and the resumed labels equal those of an uninterrupted run.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from samqa_framework.data import rle
from samqa_framework.data.sequence import Sequence

if TYPE_CHECKING:  # the store imports this module
    from samqa_framework.annotate.store import LabelStore

SOURCES = ("auto", "recovered", "manual")


@dataclass
class Instance:
    """One animal in one frame. ``box`` is ``x1, y1, x2, y2`` in pixels; ``mask`` (H, W) bool or None (box-only
    methods such as Grounding DINO)."""

    track_id: int
    box: np.ndarray
    score: float = 1.0
    source: str = "auto"
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"instance source must be one of {SOURCES}, got {self.source!r}")
        self.box = np.asarray(self.box, dtype=np.float64).reshape(4)

    @property
    def area(self) -> float:
        if self.mask is not None:
            return float(self.mask.sum())
        return float(max(self.box[2] - self.box[0], 0) * max(self.box[3] - self.box[1], 0))

    @property
    def has_mask(self) -> bool:
        return self.mask is not None

    def encoded_mask(self) -> rle.RLE | None:
        """The mask as COCO RLE (what label files store), None for a box-only instance."""
        return None if self.mask is None else rle.encode(self.mask)


class _EncodedInstance(Instance):
    """An instance whose mask arrived as COCO RLE (read from a file) and is decoded on first use of ``mask``: most
    readers of a label file need only boxes and identities, and writers store the RLE as it came."""

    def __init__(self, track_id: int, box: np.ndarray, score: float = 1.0, source: str = "auto",
                 mask: np.ndarray | None = None, encoded: rle.RLE | None = None) -> None:
        super().__init__(track_id, box, score, source, mask)
        self._encoded: rle.RLE | None = None if mask is not None else encoded

    @property
    def mask(self) -> np.ndarray | None:
        if self._mask is None and self._encoded is not None:
            self._mask = rle.decode(self._encoded)
        return self._mask

    @mask.setter
    def mask(self, value: np.ndarray | None) -> None:  # a new mask replaces the encoded one
        self._mask, self._encoded = value, None

    @property
    def area(self) -> float:
        return float(rle.area(self._encoded)) if self._encoded is not None else super().area

    @property
    def has_mask(self) -> bool:
        return self._encoded is not None or self._mask is not None

    def encoded_mask(self) -> rle.RLE | None:
        return self._encoded if self._encoded is not None else super().encoded_mask()


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """Tight ``x1, y1, x2, y2`` box of a mask (pixel edges, so a one-pixel mask is 1 x 1), None when empty."""
    ys = np.flatnonzero(mask.any(axis=1))
    if ys.size == 0:
        return None
    xs = np.flatnonzero(mask.any(axis=0))
    return np.array([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], dtype=np.float64)


def instance_from_rle(track_id: int, box: np.ndarray, encoded: rle.RLE | None, score: float = 1.0,
                      source: str = "auto") -> Instance:
    """An instance whose mask (COCO RLE, or None: box only) is decoded only when ``mask`` is first read."""
    if encoded is None:
        return Instance(int(track_id), box, float(score), source)
    return _EncodedInstance(int(track_id), box, float(score), source, encoded=encoded)


def instance_from_mask(track_id: int, mask: np.ndarray, score: float = 1.0, source: str = "auto") -> Instance | None:
    """An instance boxed by its mask; None for an empty mask."""
    box = mask_box(mask)
    return None if box is None else Instance(int(track_id), box, float(score), source, mask.astype(bool, copy=False))


@dataclass
class FrameLabels:
    """All instances of one (1-based) frame and what they cost: ``prompts`` given from outside the model (boxes
    or points from a person or the oracle), ``interventions`` (times a person was asked), ``recoveries``
    (automatic re-prompts). ``labelled`` False: the method skipped the frame (e.g. manual labels every Nth frame),
    which is not the same as a frame labelled empty; exports leave skipped frames out of training sets.
    ``failed``: which quality checks failed on this frame and why (SAM-QA), e.g. ``{2: "overlap"}``."""

    frame: int
    instances: list[Instance] = field(default_factory=list)
    prompts: int = 0
    interventions: int = 0
    recoveries: int = 0
    labelled: bool = True
    failed: dict[int, str] = field(default_factory=dict)  # identity -> the check it failed (before any fix)

    def by_id(self) -> dict[int, Instance]:
        return {inst.track_id: inst for inst in self.instances}


class Annotator(abc.ABC):
    """A labelling method. Subclasses implement :meth:`step`; stateful ones extend :meth:`commit`."""

    name: str = "annotator"

    def __init__(self, num_animals: int | None = None) -> None:
        self.previous: FrameLabels | None = None
        self.next_id = 1  # the next unused identity (after every identity committed so far)
        self.num_animals = None if num_animals is None else int(num_animals)

    def start(self, sequence: Sequence, num_animals: int | None = None) -> None:
        """Called once per run (fresh or resumed) before any frame: bind to the sequence (ground truth, sizes).
        ``num_animals``: the data set's known count, used when the config sets none."""
        self.previous = None
        self.next_id = 1
        if self.num_animals is None and num_animals is not None:
            self.num_animals = int(num_animals)

    def attach(self, store: LabelStore) -> None:  # noqa: B027 - optional hook
        """Called once per run after :meth:`start`, with the sequence's label store (before any replay)."""

    def prefetch(self, image: np.ndarray) -> None:  # noqa: B027 - optional hook
        """The pixels of the frame after the one :meth:`step` gets next (the run calls this just before that step,
        when asked to overlap work): start what does not depend on labels, e.g. the image embedding. Must not change
        any result: a run that never calls it labels the same."""

    @abc.abstractmethod
    def step(self, frame: int, image: np.ndarray) -> FrameLabels:
        """Labels of 1-based ``frame`` whose pixels are ``image`` (uint8 BGR, as OpenCV reads it)."""

    def commit(self, labels: FrameLabels) -> None:
        """Accept a frame's final labels (fresh from :meth:`step`, or replayed from the store on resume)."""
        if labels.labelled:
            self.previous = labels
        for inst in labels.instances:
            self.next_id = max(self.next_id, inst.track_id + 1)

    def close(self) -> None:  # noqa: B027 - optional hook, most methods hold nothing to release
        """Release resources after the last frame."""
