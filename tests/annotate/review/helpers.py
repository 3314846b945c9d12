"""A live annotation to answer (SAM-QA with the ideal segmenter of ``tests/annotate/helpers.py``, on a thread) and
what the tests send to the review page."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import requests

from samqa_framework.annotate.prompts import WebPrompts
from samqa_framework.annotate.runner import AnnotationResult, annotate_sequence
from samqa_framework.annotate.samqa.annotator import SamQaAnnotator
from samqa_framework.data.sequence import Sequence
from tests.annotate.helpers import GtMaskPredictor
from tests.annotate.samqa.test_annotator import QA


def gt_answer(seq: Sequence, frame: int) -> list[dict[str, Any]]:
    rows = seq.gt().rows_of(frame)
    return [{"id": int(i), "box": [float(v) for v in b]} for i, b in zip(rows.track_id, rows.xyxy, strict=True)]


class LiveRun:
    """``annotate_sequence`` with ``WebPrompts`` on a background thread; frames 1 and those of ``corrupt`` (all
    points lost too) need a person."""

    def __init__(self, seq: Sequence, out: Path, corrupt: dict[int, str] | None = None, **web: Any) -> None:
        self.prompts = WebPrompts(**web)
        self.annotator = SamQaAnnotator(GtMaskPredictor(seq, corrupt or {}, corrupt_points=True), self.prompts, QA)
        self.result: AnnotationResult | None = None
        self.error: BaseException | None = None
        self.out = out
        self._thread = threading.Thread(target=self._run, args=(seq,), daemon=True)

    def _run(self, seq: Sequence) -> None:
        try:
            self.result = annotate_sequence(self.annotator, seq, self.out, {"web": 1}, progress=False)
        except BaseException as exc:
            self.error = exc

    def start(self, timeout: float = 60) -> str:
        """Start; returns the page's base URL once it serves."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.prompts.url:
            assert time.monotonic() < deadline and self._thread.is_alive(), f"the page never came up: {self.error}"
            time.sleep(0.01)
        return self.prompts.url

    def join(self, timeout: float = 120) -> AnnotationResult:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the annotation did not finish"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    def api(self, method: str, path: str, token: str | None = "", **kwargs: Any) -> requests.Response:
        headers = {} if token is None else {"X-Samqa-Token": token or self.prompts.token}
        return requests.request(method, f"{self.prompts.url}{path}", headers=headers, timeout=60, **kwargs)
