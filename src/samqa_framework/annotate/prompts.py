"""Where manual prompts come from when an annotator needs a person: every call is one intervention.

- ``OraclePrompts``: the ground-truth boxes of the frame (experiments: counts what a person would have done).
- ``QueuePrompts``: a real person. The frames that need boxes are written to
  ``<queue_dir>/<sequence>/requests.json`` with a preview image each; the run stops (:class:`PromptsNeeded`),
  the person writes boxes to ``<queue_dir>/<sequence>/answers.json`` and runs the same command
  again, which resumes at that frame.
- ``WebPrompts``: a person answers on a local web page that the annotation process serves itself
  (``annotate/review/``) and annotation goes on in the same process; with ``answer_by="oracle"`` the ground truth
  answers through the same HTTP API. Each answer is journaled in the label store before it is used.
"""

from __future__ import annotations

import abc
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from samqa_framework.annotate.base import FrameLabels
from samqa_framework.annotate.ground_truth import GroundTruthFrames
from samqa_framework.annotate.store import LabelStore
from samqa_framework.data.sequence import Sequence
from samqa_framework.utils.errors import ConfigError, DataFormatError, SamqaError
from samqa_framework.utils.io import atomic_write_json

if TYPE_CHECKING:
    from samqa_framework.annotate.review.client import OracleClient
    from samqa_framework.annotate.review.server import PageServer
    from samqa_framework.annotate.review.session import ReviewSession


class PromptsNeeded(SamqaError):
    """The run stopped because a person must supply boxes; the labels so far are kept."""

    exit_code = 3

    def __init__(self, frame: int, requests: Path, answers: Path) -> None:
        super().__init__(f"frame {frame} needs manual boxes: see {requests} (preview images beside it), write "
                         f"them to {answers} as {{\"{frame}\": [{{\"id\": 1, \"box\": [x1, y1, x2, y2]}}, ...]}} "
                         f"and run the same command again to resume")
        self.frame = frame


class PromptProvider(abc.ABC):
    """Boxes (``x1, y1, x2, y2`` pixels) with identities for a frame that a method could not label alone."""

    def start(self, sequence: Sequence) -> None:  # noqa: B027 - optional hook
        """Bind to the sequence being annotated."""

    def attach(self, store: LabelStore) -> None:  # noqa: B027 - optional hook
        """Called once per run after :meth:`start`, with the sequence's label store."""

    @abc.abstractmethod
    def boxes(self, frame: int, image: np.ndarray, current: FrameLabels | None = None) -> dict[int, np.ndarray]:
        """Manual boxes of every visible animal of ``frame``. ``current``: the method's failed labels (context)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what :meth:`attach` started (called when the run of a sequence ends, however it ends)."""


class OraclePrompts(PromptProvider):
    """The ground truth plays the person."""

    def __init__(self) -> None:
        self._gt: GroundTruthFrames | None = None

    def start(self, sequence: Sequence) -> None:
        self._gt = GroundTruthFrames(sequence, masks=False)

    def boxes(self, frame: int, image: np.ndarray, current: FrameLabels | None = None) -> dict[int, np.ndarray]:
        if self._gt is None:
            raise RuntimeError("OraclePrompts.start(sequence) was not called")
        return self._gt.boxes(frame)


_ANSWER_FORMAT = '{"<frame>": [{"id": <int>, "box": [x1, y1, x2, y2]}, ...]}'


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys without a word: a frame answered twice would lose one answer
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice")
        out[key] = value
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_boxes(items: Any, width: int, height: int) -> dict[int, np.ndarray]:
    """A person's answer for one frame, ``[{"id": <int>, "box": [x1, y1, x2, y2]}, ...]`` (answers.json or the review
    page), as boxes by identity. Every entry is used as written or refused: a ValueError names the entry and what is
    wrong (a box dropped or misread would label the animal wrongly from then on)."""
    if not isinstance(items, list):
        raise ValueError(f"expected a list of boxes, got {type(items).__name__}")
    boxes: dict[int, np.ndarray] = {}
    for n, item in enumerate(items, start=1):
        entry = f"entry {n}"
        if not isinstance(item, Mapping) or set(item) != {"id", "box"}:
            raise ValueError(f"{entry}: expected {{\"id\": <int>, \"box\": [x1, y1, x2, y2]}}, got "
                             f"{json.dumps(item, default=str)[:80]}")
        track_id, box = item["id"], item["box"]
        if not _is_number(track_id) or not float(track_id).is_integer() or track_id < 1:
            raise ValueError(f"{entry}: id must be an integer >= 1, got {json.dumps(track_id, default=str)}")
        track_id = int(track_id)
        if track_id in boxes:
            raise ValueError(f"{entry}: id {track_id} has two boxes in this frame")
        entry = f"{entry} (id {track_id})"
        if not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box):
            raise ValueError(f"{entry}: box must be a list of 4 numbers [x1, y1, x2, y2], got "
                             f"{json.dumps(box, default=str)[:80]}")
        arr = np.asarray(box, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{entry}: box {box} has a value that is not finite")
        if arr[2] <= arr[0] or arr[3] <= arr[1]:
            raise ValueError(f"{entry}: box {box} is not x1 < x2, y1 < y2 (a box of no or negative size)")
        if arr[0] < -1 or arr[1] < -1 or arr[2] > width + 1 or arr[3] > height + 1:
            raise ValueError(f"{entry}: box {box} lies outside the {width}x{height} frame")
        boxes[track_id] = arr
    return boxes


def _parse_answers(path: Path, width: int, height: int) -> dict[int, dict[int, np.ndarray]]:
    """``answers.json``, checked strictly: every entry is used as written or the file is refused, naming the frame
    and the entry (a box dropped or misread would label the animal wrongly from then on)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicate_keys)
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, f"not UTF-8 text ({exc})") from None
    except ValueError as exc:
        raise DataFormatError(path, f"not valid JSON ({exc}); expected {_ANSWER_FORMAT}") from None
    if not isinstance(data, Mapping):
        raise DataFormatError(path, f"expected {_ANSWER_FORMAT}")
    answers: dict[int, dict[int, np.ndarray]] = {}
    for key, items in data.items():
        where = f"frame {key!r}"
        if not key.strip().isdigit() or int(key) < 1:
            raise DataFormatError(path, f"{where}: a frame number (1, 2, ...) expected as the key")
        frame = int(key)
        if frame in answers:
            raise DataFormatError(path, f"{where}: frame {frame} is answered twice")
        try:
            answers[frame] = parse_boxes(items, width, height)
        except ValueError as exc:
            sep = ", " if str(exc).startswith("entry") else ": "
            raise DataFormatError(path, f"{where}{sep}{exc}") from None
    return answers


class QueuePrompts(PromptProvider):
    """A person answers through files in ``queue_dir`` (see the module docstring)."""

    def __init__(self, queue_dir: str | os.PathLike[str]) -> None:
        self.base_dir = Path(queue_dir)
        self.queue_dir = self.base_dir
        self.size = (0, 0)

    @property
    def requests_path(self) -> Path:
        return self.queue_dir / "requests.json"

    @property
    def answers_path(self) -> Path:
        return self.queue_dir / "answers.json"

    def start(self, sequence: Sequence) -> None:
        self.queue_dir = self.base_dir / sequence.name  # frame numbers are per sequence
        self.queue_dir.mkdir(parents=True, exist_ok=True)
        self.size = (sequence.info.width, sequence.info.height)

    def boxes(self, frame: int, image: np.ndarray, current: FrameLabels | None = None) -> dict[int, np.ndarray]:
        if self.answers_path.is_file():
            answers = _parse_answers(self.answers_path, *self.size)
            if frame in answers:
                return answers[frame]
        preview = self.queue_dir / f"frame_{frame:06d}.png"
        overlay = image.copy()
        for inst in current.instances if current else []:  # what the method proposed, for the person to fix
            x1, y1, x2, y2 = (round(v) for v in inst.box)
            cv2.rectangle(overlay, (x1, y1), (x2, y2), (0, 0, 255), 1)
            cv2.putText(overlay, str(inst.track_id), (x1, max(y1 - 2, 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                        (0, 0, 255), 1)
        cv2.imwrite(str(preview), overlay)
        proposed = [{"id": i.track_id, "box": [round(float(v), 1) for v in i.box]}
                    for i in (current.instances if current else [])]
        atomic_write_json(self.requests_path, {"frame": frame, "preview": preview.name, "proposed": proposed,
                                               "answer_in": self.answers_path.name})
        raise PromptsNeeded(frame, self.requests_path, self.answers_path)


ANSWERERS = ("person", "oracle")


class WebPrompts(PromptProvider):
    """A person answers on a local web page (``annotate/review/``) served by the annotation process itself.

    When a frame needs a person, the page shows it with the proposed masks and boxes, the previous frame's labels and
    the checks that failed; the answer is journaled in the label store (``answers.jsonl``) before the annotator uses
    it, so a run killed right after an answer resumes with it. ``host`` / ``port`` (0: a free port) say where the page
    is served; ``token`` (None: a random one) must come with every request; ``max_body_bytes`` caps a request's body.
    ``answer_by="oracle"``: the ground truth answers through the same HTTP API (experiments use the web path).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                 max_body_bytes: int = 65536, answer_by: str = "person") -> None:
        if answer_by not in ANSWERERS:
            raise ConfigError("answer_by", f"must be one of {list(ANSWERERS)}, got {answer_by!r}")
        if not 0 <= int(port) < 65536:
            raise ConfigError("port", f"must be a TCP port (0: a free one), got {port}")
        if int(max_body_bytes) < 1024:
            raise ConfigError("max_body_bytes", f"must be at least 1024, got {max_body_bytes}")
        self.host, self.port, self.max_body_bytes, self.answer_by = str(host), int(port), int(max_body_bytes), answer_by
        self.token = token or secrets.token_urlsafe(24)
        self.sequence: Sequence | None = None
        self.session: ReviewSession | None = None
        self.server: PageServer | None = None
        self.url = ""
        self._client: OracleClient | None = None
        self._answered: dict[int, dict[int, np.ndarray]] = {}

    def start(self, sequence: Sequence) -> None:
        self.close()
        self.sequence = sequence

    def attach(self, store: LabelStore) -> None:
        # imported here: the web server's libraries load only when a page is served
        from samqa_framework.annotate.review.app import build_app
        from samqa_framework.annotate.review.client import OracleClient
        from samqa_framework.annotate.review.server import PageServer
        from samqa_framework.annotate.review.session import ReviewSession

        if self.sequence is None:
            raise RuntimeError("WebPrompts.start(sequence) was not called")
        self._answered = store.answers()  # journaled before a crash: used instead of asking again
        self.session = ReviewSession(store, self.sequence, self.sequence.info.seq_length, live=True,
                                     answered_by=self.answer_by)
        self.server = PageServer(build_app(self.session, self.token, self.max_body_bytes), self.host, self.port)
        self.url = self.server.start()
        print(f"review page ({self.sequence.name}, questions answered by the {self.answer_by}): "
              f"{self.url}/?token={self.token}", flush=True)
        if self.answer_by == "oracle":
            oracle = OraclePrompts()
            oracle.start(self.sequence)
            self._client = OracleClient(self.url, self.token, lambda frame: oracle.boxes(frame, np.zeros(0)),
                                        on_error=self.session.close)
            self._client.start()

    def boxes(self, frame: int, image: np.ndarray, current: FrameLabels | None = None) -> dict[int, np.ndarray]:
        if frame in self._answered:
            return self._answered.pop(frame)
        if self.session is None:
            raise RuntimeError("WebPrompts.attach(store) was not called")
        return self.session.ask(frame, image, current)

    def close(self) -> None:
        if self._client is not None:
            self._client.stop()
            self._client = None
        if self.session is not None:
            self.session.close()
        if self.server is not None:
            self.server.stop()
            self.server = None
