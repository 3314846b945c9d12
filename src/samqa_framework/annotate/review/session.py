"""What the review page shows and changes: one sequence's label store, and during a run the question that is open.

A live session (``prompts=web``) holds at most one open question: the annotation thread blocks in :meth:`ask` until
:meth:`answer` (an HTTP request on the server's thread) journals the boxes in the store and hands them over. A review
session (``samqa-review``) journals corrections and rebuilds the label files after each.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from samqa_framework.annotate.base import FrameLabels
from samqa_framework.annotate.prompts import parse_boxes
from samqa_framework.annotate.review.board import timeline
from samqa_framework.annotate.store import LabelStore
from samqa_framework.data.sequence import Sequence
from samqa_framework.utils.errors import SamqaError


class SessionClosed(SamqaError):
    """The page stopped (or the oracle could not answer) while the annotation waited for an answer; the labels so
    far are kept."""


class NotAllowed(RuntimeError):
    """The request does not fit the session's state (no such question, or a correction during a run)."""


@dataclass
class Question:
    frame: int
    image: np.ndarray
    proposed: FrameLabels | None  # the method's failed labels (masks included), None on a first frame
    asked_at: float


class ReviewSession:
    """``live``: answers questions of a running annotation; otherwise corrections of a finished one, each followed by
    ``rebuild()`` (the label files, reports). ``answered_by`` is journaled with each answer."""

    def __init__(self, store: LabelStore, sequence: Sequence, total: int, live: bool,
                 rebuild: Callable[[], Any] | None = None, answered_by: str = "person") -> None:
        self.store, self.sequence, self.total, self.live = store, sequence, int(total), live
        self.rebuild, self.answered_by = rebuild, answered_by
        self.width, self.height = sequence.info.width, sequence.info.height
        self._frames = sequence.frames()
        self._cond = threading.Condition()
        self._write = threading.Lock()  # one correction (journal + rebuild) at a time
        self._question: Question | None = None
        self._answer: dict[int, np.ndarray] | None = None
        self._closed = False
        self._why_closed = "the review page stopped"
        self._answered_at: float | None = None
        self.timings: list[dict[str, float]] = []  # per question after an answer: compute_s (answer -> next question)

    # -- a running annotation ------------------------------------------------------------------------------------
    def ask(self, frame: int, image: np.ndarray, proposed: FrameLabels | None) -> dict[int, np.ndarray]:
        """Open a question for ``frame`` and wait for its answer (called by the annotation thread)."""
        with self._cond:
            now = time.perf_counter()
            if self._answered_at is not None:
                self.timings.append({"frame": frame, "compute_s": now - self._answered_at})
            self._question, self._answer = Question(frame, image, proposed, now), None
            self._cond.notify_all()
            while self._answer is None:
                if self._closed:
                    raise SessionClosed(f"{self._why_closed} while frame {frame} waited for an answer")
                self._cond.wait(0.5)  # wakes now and then: Ctrl-C reaches the main thread
            boxes, self._question, self._answer = self._answer, None, None
            return boxes

    def question(self, after: int, wait: float) -> Question | None:
        """The open question if its frame is after ``after``, waiting up to ``wait`` seconds for one (long poll)."""
        def ready() -> bool:
            q = self._question
            return self._closed or (q is not None and self._answer is None and q.frame > after)

        with self._cond:
            self._cond.wait_for(ready, timeout=wait)
            q = self._question
            return q if q is not None and self._answer is None and q.frame > after else None

    def answer(self, frame: int, items: Any) -> dict[int, np.ndarray]:
        """The page's boxes for the open question: checked (ValueError: why), journaled, then handed over."""
        boxes = parse_boxes(items, self.width, self.height)
        with self._cond:
            q = self._question
            if q is None or q.frame != frame or self._answer is not None:
                raise NotAllowed(f"no open question for frame {frame}"
                                 + (f" (frame {q.frame} is asked)" if q is not None and self._answer is None else ""))
            self.store.append_answer(frame, boxes, by=self.answered_by)  # durable before it is acknowledged
            self._answer = boxes
            self._answered_at = time.perf_counter()
            self._cond.notify_all()
        return boxes

    def close(self, why: str | None = None) -> None:
        with self._cond:
            if why and not self._closed:
                self._why_closed = why
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- frames and labels -----------------------------------------------------------------------------------------
    def check_frame(self, frame: int) -> None:
        if not 1 <= frame <= self.total:
            raise ValueError(f"frame must be in 1..{self.total}, got {frame}")

    def image(self, frame: int) -> tuple[np.ndarray, FrameLabels | None]:
        """Frame ``frame``'s pixels and the labels drawn on them (the open question's proposal, else the store's)."""
        self.check_frame(frame)
        q = self._question
        if q is not None and q.frame == frame:
            return q.image, q.proposed
        return self._frames.read(frame - 1), self.labels(frame)

    def labels(self, frame: int) -> FrameLabels | None:
        self.check_frame(frame)
        return self.store.record(frame, corrected=True)

    def board(self) -> dict[str, Any]:
        return timeline(self.store, self.total)

    # -- after the run -------------------------------------------------------------------------------------------
    def correct(self, op: Any) -> dict[str, Any]:
        """Journal one correction (``store.check_correction``'s forms) and rebuild the label files."""
        if self.live:
            raise NotAllowed("corrections are made after the run (samqa-review), not while it annotates")
        if not isinstance(op, dict):
            raise ValueError(f"expected a correction object, got {type(op).__name__}")
        frame = op.get("frame")
        stored = self.store.count()
        if isinstance(frame, int) and not 1 <= frame <= stored:
            raise ValueError(f"frame must be a stored frame in 1..{stored}, got {frame}")
        if op.get("op") == "box":  # inside the frame, as an answer must be
            parse_boxes([{"id": op.get("id"), "box": op.get("box")}], self.width, self.height)
        with self._write:
            entry = self.store.append_correction(op)
            if self.rebuild is not None:
                self.rebuild()
        return entry
