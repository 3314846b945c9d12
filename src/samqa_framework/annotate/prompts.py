"""Where manual prompts come from when an annotator needs a person: every call is one intervention.

- ``OraclePrompts``: the ground-truth boxes of the frame (experiments: counts what a person would have done).
- ``QueuePrompts``: a real person. The frames that need boxes are written to
  ``<queue_dir>/<sequence>/requests.json`` with a preview image each; the run stops (:class:`PromptsNeeded`),
  the person writes boxes to ``<queue_dir>/<sequence>/answers.json`` and runs the same command
  again, which resumes at that frame.
"""

from __future__ import annotations

import abc
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from samqa_framework.annotate.base import FrameLabels
from samqa_framework.annotate.ground_truth import GroundTruthFrames
from samqa_framework.data.sequence import Sequence
from samqa_framework.utils.errors import DataFormatError, SamqaError
from samqa_framework.utils.io import atomic_write_json


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

    @abc.abstractmethod
    def boxes(self, frame: int, image: np.ndarray, current: FrameLabels | None = None) -> dict[int, np.ndarray]:
        """Manual boxes of every visible animal of ``frame``. ``current``: the method's failed labels (context)."""


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
        if not isinstance(items, list):
            raise DataFormatError(path, f"{where}: expected a list of boxes, got {type(items).__name__}")
        boxes: dict[int, np.ndarray] = {}
        for n, item in enumerate(items, start=1):
            entry = f"{where}, entry {n}"
            if not isinstance(item, Mapping) or set(item) != {"id", "box"}:
                raise DataFormatError(path, f"{entry}: expected {{\"id\": <int>, \"box\": [x1, y1, x2, y2]}}, got "
                                      f"{json.dumps(item)[:80]}")
            track_id, box = item["id"], item["box"]
            if not _is_number(track_id) or not float(track_id).is_integer() or track_id < 1:
                raise DataFormatError(path, f"{entry}: id must be an integer >= 1, got {json.dumps(track_id)}")
            track_id = int(track_id)
            if track_id in boxes:
                raise DataFormatError(path, f"{entry}: id {track_id} has two boxes in this frame")
            if not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box):
                raise DataFormatError(path, f"{entry} (id {track_id}): box must be a list of 4 numbers "
                                      f"[x1, y1, x2, y2], got {json.dumps(box)[:80]}")
            arr = np.asarray(box, dtype=np.float64)
            if not np.all(np.isfinite(arr)):
                raise DataFormatError(path, f"{entry} (id {track_id}): box {box} has a value that is not finite")
            if arr[2] <= arr[0] or arr[3] <= arr[1]:
                raise DataFormatError(path, f"{entry} (id {track_id}): box {box} is not x1 < x2, y1 < y2 (a box "
                                      "of no or negative size)")
            if arr[0] < -1 or arr[1] < -1 or arr[2] > width + 1 or arr[3] > height + 1:
                raise DataFormatError(path, f"{entry} (id {track_id}): box {box} lies outside the {width}x{height} "
                                      "frame")
            boxes[track_id] = arr
        answers[frame] = boxes
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
