"""SAM 2 as a labelling method (the paper's "SAM 2 (15)" / "SAM 2 (30)" rows): SAM 2's video predictor,
re-prompted with a person's boxes every ``prompt_interval`` frames and propagating them in between. (SAM 2 as
SAM-QA's recovery model: ``annotate/samqa/sam2_recovery.py``.)"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import numpy as np
from tqdm import tqdm

from samqa_framework.annotate.base import Annotator, FrameLabels, Instance, instance_from_mask
from samqa_framework.annotate.prompts import PromptProvider
from samqa_framework.annotate.store import LabelStore
from samqa_framework.data.sequence import Sequence
from samqa_framework.models.sam2.video_tracker import Sam2ChunkTracker
from samqa_framework.utils.errors import ConfigError, DataFormatError

Chunk = Iterator[tuple[int, dict[int, np.ndarray]]]


@contextlib.contextmanager
def _sam2_progress_bars_off() -> Iterator[None]:
    """sam2 draws two progress bars per video ("frame loading", "propagate in video"): one pair per chunk here,
    under the run's own bar. Off while our code runs sam2; restored after (sam2 stays as it was for others)."""
    # imported here, after samqa_framework.models.sam2 (imported above) has imported sam2 without its Hydra leak
    import sam2.sam2_video_predictor
    import sam2.utils.misc

    modules = (sam2.sam2_video_predictor, sam2.utils.misc)
    saved = [m.tqdm for m in modules]
    for m in modules:
        m.tqdm = functools.partial(tqdm, disable=True)
    try:
        yield
    finally:
        for m, bar in zip(modules, saved, strict=True):
            m.tqdm = bar


class Sam2VideoAnnotator(Annotator):
    """SAM 2's video predictor prompted with boxes every ``prompt_interval`` frames.

    Frames ``1, 1 + n, 1 + 2n, ...`` (``n = prompt_interval``; the paper uses 15 and 30) are prompt frames: the
    ``prompts`` provider (the ground truth by default, or a person through the queue) gives the boxes of every
    visible animal, which costs one intervention and one prompt per box. SAM 2 segments them on that frame and
    propagates them through the next ``n - 1`` frames. Identities are the provider's; every label is SAM 2's mask
    (the prompt frame's too: the box prompt is not the label) boxed by its extent, and an animal SAM 2 loses
    (empty mask) is left out of that frame. Animals that appear between prompt frames are labelled from the
    next prompt frame on.

    Streaming by chunks: the frames ``[p, p + n)`` of a prompt frame ``p`` form a chunk. When :meth:`step` needs
    a frame of another chunk, the annotator reads that chunk's frames from the sequence, prompts its first
    frame and tracks it with :class:`Sam2ChunkTracker` (SAM 2 holds the whole chunk, never the whole video);
    the chunk's masks are then served frame by frame as the run asks for them.

    Each chunk starts a FRESH SAM 2 state: the memory of one chunk's frames does not carry across the next
    prompt. Why: (1) streaming: SAM 2's state holds every frame it was given (about 12 MB a frame at 1024 px), so
    one state for a whole video grows without bound; (2) exact resume: a chunk's masks depend on that chunk's
    frames and prompt only, so a run that stops anywhere (crash, kill, a person to ask) and resumes recomputes
    the interrupted chunk from its prompt frame and writes the labels an uninterrupted run writes. The new
    prompt replaces what the memory would have carried anyway, since every chunk is re-prompted.

    ``sam2``: a video predictor from ``build_sam2_model(..., video=True)``; ``device``: where it runs;
    ``work_dir``: where each chunk's frames are written as JPEGs while it is tracked (SAM 2 reads frames from a
    folder; removed after the chunk; default the system's temporary folder).
    """

    def __init__(self, sam2: Any, prompts: PromptProvider, prompt_interval: int = 15, device: str = "cpu",
                 work_dir: str | os.PathLike[str] | None = None, num_animals: int | None = None) -> None:
        super().__init__(num_animals)
        if isinstance(prompt_interval, bool) or int(prompt_interval) != prompt_interval or prompt_interval < 1:
            raise ConfigError("prompt_interval", f"must be an integer >= 1, got {prompt_interval!r}")
        self.prompt_interval = int(prompt_interval)
        self.prompts = prompts
        self.tracker = Sam2ChunkTracker(sam2, work_dir or tempfile.gettempdir(), device)
        self.name = f"sam2_video/{self.prompt_interval}"
        self.sequence: Sequence | None = None
        self._chunk: Chunk | None = None
        self._chunk_start = 0   # 1-based prompt frame of the open chunk (0: none)
        self._chunk_stop = 0    # 1-based, exclusive
        self._next = 0          # the next 1-based frame the open chunk yields
        self._prompted = 0      # boxes given on the open chunk's prompt frame

    def start(self, sequence: Sequence, num_animals: int | None = None) -> None:
        super().start(sequence, num_animals)
        self._close_chunk()
        self.sequence = sequence
        self.prompts.start(sequence)

    def prompt_frame(self, frame: int) -> int:
        """The prompt frame at or before 1-based ``frame``: the first frame of its chunk."""
        return (frame - 1) // self.prompt_interval * self.prompt_interval + 1

    def _close_chunk(self) -> None:
        if self._chunk is not None:
            self._chunk.close()  # releases SAM 2's state and removes the chunk's frames from disk
        self._chunk, self._chunk_start, self._chunk_stop, self._next, self._prompted = None, 0, 0, 0, 0

    def _open_chunk(self, frame: int) -> None:
        self._close_chunk()
        start = self.prompt_frame(frame)
        stop = min(start + self.prompt_interval, self.sequence.info.seq_length + 1)
        frames = list(self.sequence.frames().iter_range(start - 1, stop - 1))
        if len(frames) < stop - start:
            raise DataFormatError(self.sequence.root, f"frames {start}-{stop - 1} of {self.sequence.name} could not "
                                                      f"all be read ({len(frames)} decoded)")
        boxes = self.prompts.boxes(start, frames[0], None)
        self._chunk = self.tracker.track_chunk(frames, boxes)
        self._chunk_start, self._chunk_stop, self._next, self._prompted = start, stop, start, len(boxes)

    def step(self, frame: int, image: np.ndarray) -> FrameLabels:
        if not self._chunk_start <= frame < self._chunk_stop or frame < self._next:
            self._open_chunk(frame)  # a new chunk, or a resume inside one: recompute it from its prompt frame
        while True:
            with _sam2_progress_bars_off():  # the chunk's sam2 work runs inside next()
                offset, masks = next(self._chunk)
            self._next = self._chunk_start + offset + 1
            if self._chunk_start + offset == frame:
                break
        instances: list[Instance] = []
        for track_id in sorted(masks):
            inst = instance_from_mask(track_id, masks[track_id])
            if inst is not None:
                instances.append(inst)
        prompted = frame == self._chunk_start
        return FrameLabels(frame, instances, prompts=self._prompted if prompted else 0,
                           interventions=int(prompted))

    def attach(self, store: LabelStore) -> None:
        self.prompts.attach(store)

    def close(self) -> None:
        self._close_chunk()
        self.prompts.close()

